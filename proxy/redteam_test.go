package proxy_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/telemetry"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A hostile plain user (Alice, a member of p-alice) against bridges whose
// upstream trusts the bridge's administrator token: whatever the bridge lets
// through, the upstream carries out with an administrator's authority.

var ec2Sides = []translate.Side{translate.SideIBM, translate.SideKeystone}

// ec2Blob is a blob in the form a client of side c sends.
func ec2Blob(c translate.Side, members string) string {
	if c == translate.SideKeystone {
		return `"` + strings.ReplaceAll("{"+members+"}", `"`, `\"`) + `"`
	}
	return "{" + members + "}"
}

// refused is an answer that changed nothing: 400 or 403, in the client's dialect.
func refused(t *testing.T, client translate.Side, r *bt.Resp) {
	t.Helper()
	if r.Status != http.StatusBadRequest && r.Status != http.StatusForbidden {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	bt.CheckDialect(t, client, r)
}

// TestRedteamCreateInForeignProject (FAILS on main): Alice creates a key for
// herself but in Bob's project (IBM: storage account). The bridge checks only
// user_id; project_id is forwarded (same dialect) or rendered (cross flavor)
// as the client wrote it, and the trusting upstream stores it. The attacker
// gains an HMAC key bound to another account's buckets (IBM COS), or an EC2
// credential scoped to a project she has no role on (Keystone) — the
// spec's mapping gives an ec2blob upstream "the caller's token project".
func TestRedteamCreateInForeignProject(t *testing.T) {
	for _, up := range ec2Sides {
		for _, client := range ec2Sides {
			t.Run(up.String()+"/"+client.String(), func(t *testing.T) {
				e := trusting(t, up, nil)
				blob := ec2Blob(client, `"access":"REDTEAMPROJ0000001","secret":"attacker-chosen-secret"`)
				body := `{"credential":{"user_id":"u-alice","project_id":"p-bob","type":"ec2","blob":` + blob + `}}`
				r := e.Do("POST", bt.Base(client), bt.Alice, bt.CType(client), body)
				if keys := e.Store.Keys(func(k emulator.Key) bool { return k.ProjectID == "p-bob" }); len(keys) != 0 {
					t.Fatalf("status %d: a key was stored in p-bob: %+v", r.Status, keys)
				}
				refused(t, client, r)
			})
		}
	}
}

// TestRedteamUpdateMovesKeyToForeignProject (FAILS on main): the no-move rule
// covers user_id only; a PATCH naming another project_id moves Alice's key
// into Bob's project/storage account (same dialect: body forwarded; cross
// flavor: merge() copies project_id). Same gain as above, for an existing key.
func TestRedteamUpdateMovesKeyToForeignProject(t *testing.T) {
	for _, up := range ec2Sides {
		for _, client := range ec2Sides {
			t.Run(up.String()+"/"+client.String(), func(t *testing.T) {
				e := trusting(t, up, nil)
				ak, sk := e.Seed("u-alice")
				blob := ec2Blob(client, `"access":"`+ak+`","secret":"`+sk+`","status":"Active"`)
				body := `{"credential":{"blob":` + blob + `,"type":"ec2","user_id":"u-alice","project_id":"p-bob"}}`
				r := e.Do("PATCH", bt.KeyPath(client, ak), bt.Alice, bt.CType(client), body)
				if k, _ := e.Store.Get(ak); k.ProjectID != "p-alice" {
					t.Fatalf("status %d: key moved to project %q: %s", r.Status, k.ProjectID, r.Body)
				}
				refused(t, client, r)
			})
		}
	}
}

// TestRedteamKeystoneBlobExtraMembers (FAILS on main): a Keystone client's
// string blob is forwarded byte for byte to a Keystone upstream, members the
// bridge never checked included. Keystone's ec2tokens reads trust_id,
// app_cred_id and access_token_id from the blob to scope the token it issues
// (CVE-2020-12689 class); with the bridge's administrator token nothing
// upstream stops a member from attaching someone else's trust or application
// credential to her key. Only the members the bridge checked may be sent.
func TestRedteamKeystoneBlobExtraMembers(t *testing.T) {
	for _, member := range []string{"trust_id", "app_cred_id", "access_token_id"} {
		t.Run(member, func(t *testing.T) {
			e := trusting(t, translate.SideKeystone, nil)
			blob := ec2Blob(translate.SideKeystone, `"access":"REDTEAMTRUST000001","secret":"s3cr3t","`+member+`":"0123456789abcdef0123456789abcdef"`)
			body := `{"credential":{"user_id":"u-alice","project_id":"p-alice","type":"ec2","blob":` + blob + `}}`
			r := e.Do("POST", bt.Base(translate.SideKeystone), bt.Alice, "application/json", body)
			ak, sk := e.Seed("u-alice")
			patch := `{"credential":{"blob":` + ec2Blob(translate.SideKeystone, `"access":"`+ak+`","secret":"`+sk+`","`+member+`":"0123456789abcdef0123456789abcdef"`) + `}}`
			p := e.Do("PATCH", bt.KeyPath(translate.SideKeystone, ak), bt.Alice, "application/json", patch)
			for _, s := range e.Received.All() {
				if s.Method != "GET" && strings.Contains(string(s.Body), member) {
					t.Fatalf("create %d, patch %d: the upstream received %s in a blob: %s %s", r.Status, p.Status, member, s.Method, s.Body)
				}
			}
		})
	}
}

// TestRedteamCrossUserOps (passes): Alice, and te_admin (not a key admin), against Bob's key, every operation,
// every client dialect, every upstream: refused, nothing written, and an
// oscred client never sees a secret.
func TestRedteamCrossUserOps(t *testing.T) {
	for _, up := range sides {
		for _, client := range sides {
			t.Run(up.String()+"/"+client.String(), func(t *testing.T) {
				e := trusting(t, up, nil)
				ak, sk := e.Seed("u-bob")
				path := bt.KeyPath(client, ak)
				upd := `{"credential":{"status":"inactive"}}`
				if client.Dialect == translate.EC2Blob {
					upd = `{"credential":{"blob":` + ec2Blob(client, `"access":"`+ak+`","secret":"mine","status":"Inactive"`) + `,"type":"ec2"}}`
				}
				for _, tok := range []string{bt.Alice, bt.TE} {
					for _, rq := range []struct{ method, path, body string }{
						{"GET", path, ""},
						{bt.UpdateMethod(client), path, upd},
						{"DELETE", path, ""},
						{"GET", bt.Base(client) + "?user_id=u-bob", ""},
					} {
						ct := ""
						if rq.body != "" {
							ct = bt.CType(client)
						}
						r := e.Do(rq.method, rq.path, tok, ct, rq.body)
						if r.Status != 403 && r.Status != 404 {
							t.Fatalf("%s %s %s: status %d: %s", tok, rq.method, rq.path, r.Status, r.Body)
						}
						if strings.Contains(string(r.Body), sk) {
							t.Fatalf("%s %s %s: Bob's secret shown: %s", tok, rq.method, rq.path, r.Body)
						}
					}
				}
				if e.Received.Writes() != 0 {
					t.Fatalf("the upstream received %d writes", e.Received.Writes())
				}
				if k, ok := e.Store.Get(ak); !ok || !k.Active || k.SK != sk || k.UserID != "u-bob" {
					t.Fatalf("Bob's key now %+v (present %v)", k, ok)
				}
			})
		}
	}
}

// TestRedteamOscredNeverSeesSecret (passes): an oscred client reads its own
// key from every upstream (IBM and Keystone return secrets on get and list):
// only a create answer may carry one.
func TestRedteamOscredNeverSeesSecret(t *testing.T) {
	for _, up := range sides {
		t.Run(up.String(), func(t *testing.T) {
			e := trusting(t, up, nil)
			ak, sk := e.Seed("u-alice")
			for _, path := range []string{bt.KeyPath(translate.SideOscred, ak), bt.Base(translate.SideOscred), bt.Base(translate.SideOscred) + "?user_id=u-alice"} {
				r := e.Do("GET", path, bt.Alice, "", "")
				if r.Status != 200 || !strings.Contains(string(r.Body), ak) {
					t.Fatalf("%s: status %d: %s", path, r.Status, r.Body)
				}
				if strings.Contains(string(r.Body), sk) || strings.Contains(string(r.Body), `"secret"`) {
					t.Fatalf("%s: secret shown to an oscred client: %s", path, r.Body)
				}
			}
			for _, body := range []string{`{"credential":{"status":"inactive"}}`, `{"credential":{"description":"d"}}`, `{"credential":{"status":"active","user_id":"u-alice"}}`} {
				r := e.Do("PUT", bt.KeyPath(translate.SideOscred, ak), bt.Alice, bt.CType(translate.SideOscred), body)
				if r.Status != 200 || strings.Contains(string(r.Body), sk) || strings.Contains(string(r.Body), `"secret"`) {
					t.Fatalf("update %s: status %d: %s", body, r.Status, r.Body)
				}
			}
		})
	}
}

// TestRedteamBodyReadTwoWays (passes): bodies Go's encoding/json or Python's
// json.loads would read differently from the bridge's gjson, each hiding
// u-bob as the owner: all refused before the upstream hears of them.
func TestRedteamBodyReadTwoWays(t *testing.T) {
	bodies := map[string]string{
		"long s folds to S (Go)":         `{"credential":{"user_id":"u-alice","uſer_id":"u-bob"}}`,
		"long s in status (update-ish)":  `{"credential":{"user_id":"u-alice","\u017ftatus":"x"}}`,
		"escaped long s":                 `{"credential":{"user_id":"u-alice","u\u017fer_id":"u-bob"}}`,
		"surrogate pair escape dup":      `{"credential":{"user_id":"u-alice"},"\ud835\udc1c":1,"\ud835\udc1c":2}`,
		"lone surrogate name":            `{"credential":{"user_id":"u-alice","user_id\ud800":"u-bob"}}`,
		"NUL in name (C parsers stop)":   `{"credential":{"user_id":"u-alice","user_id\u0000x":"u-bob"}}`,
		"BOM":                            "\ufeff" + `{"credential":{"user_id":"u-bob"}}`,
		"comment":                        `{"credential":{"user_id":"u-alice" /*,"user_id":"u-bob"*/}}`,
		"trailing second document":       `{"credential":{"user_id":"u-alice"}}{"credential":{"user_id":"u-bob"}}`,
		"NaN (Python accepts)":           `{"credential":{"user_id":"u-alice"},"x":NaN}`,
		"Infinity (Python accepts)":      `{"credential":{"user_id":"u-alice"},"x":-Infinity}`,
		"leading zero number":            `{"credential":{"user_id":"u-alice"},"x":01}`,
		"single quotes":                  `{'credential':{'user_id':'u-bob'}}`,
		"user_id as number":              `{"credential":{"user_id":1e999}}`,
		"user_id as array":               `{"credential":{"user_id":["u-alice","u-bob"]}}`,
		"raw control char in value":      "{\"credential\":{\"user_id\":\"u-alice\tu-bob\"}}",
		"invalid UTF-8 (Go: U+FFFD)":     "{\"credential\":{\"user_id\":\"u-alice\",\"user_id\xff\":\"u-bob\"}}",
		"trailing comma":                 `{"credential":{"user_id":"u-alice",},"x":[1,]}`,
		"deep nesting":                   `{"credential":{"user_id":"u-alice"},"x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`,
		"case dup far past the table":    `{"credential":{"user_id":"u-alice"},` + manyMembers(40) + `,"CREDENTIAL":{"user_id":"u-bob"}}`,
		"duplicate credential escaped /": `{"credential":{"user_id":"u-alice"},"credential\/":1,"cred\u0065ntial":{"user_id":"u-bob"}}`,
	}
	for _, up := range sides {
		for name, body := range bodies {
			t.Run(up.String()+"/"+name, func(t *testing.T) {
				e := trusting(t, up, nil)
				r := e.Do("POST", bt.Base(translate.SideOscred), bt.Alice, bt.CType(translate.SideOscred), body)
				if r.Status != 400 {
					t.Fatalf("status %d: %s", r.Status, r.Body)
				}
				bt.CheckDialect(t, translate.SideOscred, r)
				if n := e.Upstream.Requests(); n != 0 {
					t.Fatalf("the upstream received %d requests", n)
				}
			})
		}
	}
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"m` + strings.Repeat("x", i) + `":0`)
	}
	return b.String()
}

// TestRedteamQueryAndPathSmuggling (passes): list filters and ids that would
// widen or redirect the upstream call. Each is refused, or reaches the upstream
// only as the caller's own list.
func TestRedteamQueryAndPathSmuggling(t *testing.T) {
	for _, up := range sides {
		for _, client := range sides {
			t.Run(up.String()+"/"+client.String(), func(t *testing.T) {
				e := trusting(t, up, nil)
				base := bt.Base(client)
				bobAK, bobSK := e.Seed("u-bob")
				for _, q := range []string{
					"?user_id=u-alice&user_id=u-bob",
					"?user_id=u-alice;user_id=u-bob",
					"?user_id=u-alice%26user_id%3Du-bob",
					"?user_id=u-bob%00",
					"?user_id=",
					"?project_id=p-bob",
					"?user_id=u-alice&type=ec2&type=totp",
				} {
					before := len(e.Received.All())
					r := e.Do("GET", base+q, bt.Alice, "", "")
					if strings.Contains(string(r.Body), bobAK) || strings.Contains(string(r.Body), bobSK) {
						t.Fatalf("%s: Bob's key listed: %s", q, r.Body)
					}
					for _, s := range e.Received.All()[before:] {
						vals := splitQuery(s.RawQuery)
						if u := vals["user_id"]; len(u) != 1 || u[0] != "u-alice" {
							t.Fatalf("%s: the upstream was asked %q", q, s.RawQuery)
						}
					}
				}
				for _, id := range []string{"..%2F..%2Fv3%2Fusers", "%2e%2e", bobAK + "%3Bx", bobAK + "%00", strings.Repeat("A", 129), "x/y"} {
					r := e.Do("GET", base+"/"+id, bt.Alice, "", "")
					if r.Status != 400 && r.Status != 404 {
						t.Fatalf("id %q: status %d: %s", id, r.Status, r.Body)
					}
				}
				if e.Received.Writes() != 0 {
					t.Fatal("the upstream received a write")
				}
			})
		}
	}
}

func splitQuery(raw string) map[string][]string {
	m := map[string][]string{}
	for _, kv := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = append(m[k], v)
	}
	return m
}

// TestRedteamServiceTokenNeverLent (passes): identity look-ups and temporary
// keys go with the caller's token; an invalid token reaches nothing.
func TestRedteamServiceTokenNeverLent(t *testing.T) {
	e := trusting(t, translate.SideOscred, nil)
	// The administrator (whose token the bridge holds) sees the service account.
	if r := e.Do("GET", "/v3/users", bt.Admin, "", ""); r.Status != 200 || !strings.Contains(string(r.Body), "u-svc") {
		t.Fatalf("the admin's view: status %d: %s", r.Status, r.Body)
	}
	for _, path := range []string{"/v3/users", "/v3/projects", "/v3/users/u-svc", "/v3/projects/p-demo"} {
		r := e.Do("GET", path, bt.Alice, "", "")
		if r.Status == 200 && strings.Contains(string(r.Body), "u-svc") {
			t.Fatalf("%s: the service account's view: %s", path, r.Body)
		}
		if r := e.Do("GET", path, "not-a-real-token", "", ""); r.Status != 401 {
			t.Fatalf("%s with a bad token: status %d", path, r.Status)
		}
	}
	r := e.Do("POST", "/v3.0/OS-CREDENTIAL/securitytokens", "not-a-real-token", "application/json", `{"auth":{"identity":{"methods":["token"]}}}`)
	if r.Status != 401 || len(e.Received.All()) != 0 {
		t.Fatalf("bad token: status %d, upstream got %d", r.Status, len(e.Received.All()))
	}
	for _, s := range e.Received.All() {
		if s.Header.Get("X-Auth-Token") == bt.Admin {
			t.Fatalf("service token sent on %s %s", s.Method, s.Path)
		}
	}
}

// TestRedteamErrorsLeakNothing (passes): with the upstream or the identity
// service dead, the 5xx names no internal address; and no answer, access line
// or span carries the caller's token or a secret.
func TestRedteamErrorsLeakNothing(t *testing.T) {
	dead := closedURL(t)
	for _, what := range []string{"upstream", "identity"} {
		for _, client := range sides {
			t.Run(what+"/"+client.String(), func(t *testing.T) {
				logs := &bt.SyncBuffer{}
				spans := tracetest.NewInMemoryExporter()
				tel, err := telemetry.New(telemetry.Options{Exporter: spans, Sync: true, Version: "test"})
				if err != nil {
					t.Fatal(err)
				}
				e := bt.Start(t, translate.SideIBM, func(c *config.Config) {
					if what == "upstream" {
						c.Upstream.URL = dead
					} else {
						c.Identity.URL = dead
					}
				}, proxy.Deps{Tokens: upstream.StaticToken(bt.Admin), Log: slog.New(slog.NewJSONHandler(logs, nil)), Telemetry: tel})
				r := e.Do("GET", bt.KeyPath(client, "AKNOTTHERE00000001"), bt.Alice, "", "")
				if r.Status < 500 {
					t.Fatalf("status %d: %s", r.Status, r.Body)
				}
				bt.CheckDialect(t, client, r)
				host := strings.TrimPrefix(dead, "http://")
				_, port, _ := strings.Cut(host, ":")
				for _, bad := range []string{host, ":" + port, "127.0.0.1", "dial", "connection refused", bt.Alice, bt.Admin} {
					if strings.Contains(string(r.Body), bad) {
						t.Fatalf("answer names %q: %s", bad, r.Body)
					}
				}
				for _, s := range spans.GetSpans() {
					for _, a := range s.Attributes {
						if v := a.Value.String(); strings.Contains(v, bt.Alice) || strings.Contains(v, bt.Admin) {
							t.Fatalf("span %s attribute %s carries a token", s.Name, a.Key)
						}
					}
				}
				if l := logs.String(); strings.Contains(l, bt.Alice) || strings.Contains(l, bt.Admin) {
					t.Fatalf("log carries a token: %s", l)
				}
			})
		}
	}
}

// TestRedteamSlowBodiesHoldEverySlot (FAILS on main): the body is read inside
// the limits.max_concurrent slot, before the token is validated (any string of
// token syntax will do). A client that sends headers and then trickles (or
// withholds) the body holds a slot until the server's ReadTimeout (30 s in
// app): max_concurrent such connections, with no valid token at all, and
// every real caller gets 503. The attacker gains a denial of service for the
// price of a few thousand idle sockets.
func TestRedteamSlowBodiesHoldEverySlot(t *testing.T) {
	e := trusting(t, translate.SideOscred, func(c *config.Config) { c.Limits.MaxConcurrent = 2 })
	host := strings.TrimPrefix(e.URL, "http://")
	for i := 0; i < 2; i++ {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_, err = io.WriteString(conn, "POST /v3.0/OS-CREDENTIAL/credentials HTTP/1.1\r\nHost: x\r\n"+
			"X-Auth-Token: not-a-token-at-all\r\nContent-Type: application/json\r\nContent-Length: 30000\r\n\r\n{")
		if err != nil {
			t.Fatal(err)
		}
	}
	asks := e.Identity.Requests()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if r := e.Do("GET", bt.Base(translate.SideOscred), bt.Alice, "", ""); r.Status != 200 {
			t.Fatalf("a real caller got %d while two unauthenticated bodies trickle: %s", r.Status, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if e.Identity.Requests() == asks {
		t.Fatal("the real caller was never validated")
	}
}

// TestRedteamDescriptionInjection (passes): a description built to break out
// of the string it is written into — once for an object blob, twice for a
// Keystone string blob — carries no member of its own to the upstream, and
// reads back exactly as sent in every dialect. A hole here would let a caller
// set blob.access/secret/user_id through a field the bridge does not check.
func TestRedteamDescriptionInjection(t *testing.T) {
	descs := []string{
		`x","access":"EVILAK0000000000001","secret":"evil","user_id":"u-bob`,
		`x\","access":"EVILAK0000000000002","secret":"evil","user_id":"u-bob`,
		`x\\\"}","user_id":"u-bob","blob":"{\"access\":\"EVILAK0000000000003\"}`,
		"x\u2028\u2029</script><!--\\u0022",
	}
	for _, up := range sides {
		for _, client := range sides {
			t.Run(up.String()+"/"+client.String(), func(t *testing.T) {
				e := trusting(t, up, nil)
				for i, d := range descs {
					enc, _ := json.Marshal(d)
					body := `{"credential":{"user_id":"u-alice","description":` + string(enc) + `}}`
					if client.Dialect == translate.EC2Blob {
						blob, _ := json.Marshal(map[string]string{"description": d})
						b := string(blob)
						if client == translate.SideKeystone {
							if up != translate.SideOscred { // oscred generates every pair
								ak, sk := translate.NewKeyPair()
								blob, _ = json.Marshal(map[string]string{"access": ak, "secret": sk, "description": d})
							}
							s, _ := json.Marshal(string(blob))
							b = string(s)
						}
						body = `{"credential":{"user_id":"u-alice","type":"ec2","blob":` + b + `}}`
					}
					r := e.Do("POST", bt.Base(client), bt.Alice, bt.CType(client), body)
					if r.Status != 201 {
						t.Fatalf("desc %d: status %d: %s", i, r.Status, r.Body)
					}
					for _, k := range e.Store.Keys(func(emulator.Key) bool { return true }) {
						if k.UserID != "u-alice" || strings.HasPrefix(k.AK, "EVILAK") || k.SK == "evil" {
							t.Fatalf("desc %d: stored %+v", i, k)
						}
					}
					var ak string
					if c := r.Cred(); c != nil {
						ak, _ = c["access"].(string)
						if b := bt.Blob(c); b != nil {
							ak, _ = b["access"].(string)
						}
					}
					k, ok := e.Store.Get(ak)
					if !ok || k.Description != d {
						t.Fatalf("desc %d: stored %q (found %v), sent %q", i, k.Description, ok, d)
					}
					for _, reader := range sides {
						g := e.Do("GET", bt.KeyPath(reader, ak), bt.Alice, "", "")
						c := g.Cred()
						got, _ := c["description"].(string)
						if b := bt.Blob(c); reader.Dialect == translate.EC2Blob && b != nil {
							got, _ = b["description"].(string)
							if a, _ := b["access"].(string); a != ak {
								t.Fatalf("desc %d read by %s: access %q", i, reader, a)
							}
						}
						if g.Status != 200 || got != d || c["user_id"] != "u-alice" {
							t.Fatalf("desc %d read by %s: status %d: %s", i, reader, g.Status, g.Body)
						}
					}
					if e.Do("DELETE", bt.KeyPath(client, ak), bt.Alice, "", "").Status != 204 {
						t.Fatal("delete failed")
					}
				}
			})
		}
	}
}

// TestRedteamUpstreamErrorDetailRelayed (FAILS on main): an upstream's 5xx
// message is copied into the client's answer ("upstream: " + message), cross
// dialect as well as same dialect. 500 messages are where backends put their
// internals (database hosts, stack traces); whoever can make the upstream fail
// (a body it chokes on) reads its internal addresses. The bridge's own 5xx
// already keep causes out of answers (writeError); an upstream's should too,
// the detail going to the access line instead.
func TestRedteamUpstreamErrorDetailRelayed(t *testing.T) {
	const internal = "10.20.30.40:3306"
	for _, up := range sides {
		for _, client := range sides {
			t.Run(up.String()+"/"+client.String(), func(t *testing.T) {
				broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusInternalServerError)
					_, _ = io.WriteString(w, `{"error":{"code":500,"title":"Internal Server Error","message":"(pymysql.err.OperationalError) Can't connect to MySQL server on '`+internal+`'"},"error_code":"IAM.0006","error_msg":"db `+internal+` down"}`)
				}))
				t.Cleanup(broken.Close)
				e := trusting(t, up, func(c *config.Config) { c.Upstream.URL = broken.URL })
				r := e.Do("GET", bt.KeyPath(client, "AKREDTEAM000000001"), bt.Alice, "", "")
				if r.Status != 500 && r.Status != 502 {
					t.Fatalf("status %d: %s", r.Status, r.Body)
				}
				if strings.Contains(string(r.Body), internal) {
					t.Fatalf("the upstream's internal address reaches the client: %s", r.Body)
				}
			})
		}
	}
}

// TestRedteamUpstreamMessageCutMidCharacter (FAILS on main): ParseUpstreamError
// cuts a long upstream message at 512 bytes, which can split a UTF-8
// character; appendString copies the bytes as they are, so the client gets a
// body that is not valid UTF-8 (not JSON by RFC 8259), and a strict client
// library fails to read the error at all.
func TestRedteamUpstreamMessageCutMidCharacter(t *testing.T) {
	long := strings.Repeat("a", 501) + "é" + strings.Repeat("b", 20) // "upstream: " + 501 = 511: é straddles 512
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"code":400,"title":"Bad Request","message":"`+long+`"}}`)
	}))
	t.Cleanup(bad.Close)
	e := trusting(t, translate.SideIBM, func(c *config.Config) { c.Upstream.URL = bad.URL })
	r := e.Do("GET", bt.KeyPath(translate.SideOscred, "AKREDTEAM000000001"), bt.Alice, "", "")
	if !utf8.Valid(r.Body) {
		t.Fatalf("status %d: answer is not valid UTF-8: %q", r.Status, r.Body[len(r.Body)-60:])
	}
	bt.CheckDialect(t, translate.SideOscred, r)
}

// TestRedteamBodyLimits (passes): a body one byte over limits.max_body_bytes is
// 413 whether its length is declared or chunked, nothing is sent upstream; a
// body at the limit, padded in an unknown member, is read.
func TestRedteamBodyLimits(t *testing.T) {
	e := trusting(t, translate.SideOscred, nil)
	limit := int(e.Cfg.Limits.MaxBodyBytes)
	pad := func(n int) string {
		head, tail := `{"credential":{"user_id":"u-alice"},"pad":"`, `"}`
		return head + strings.Repeat("p", n-len(head)-len(tail)) + tail
	}
	for _, chunked := range []bool{false, true} {
		over := pad(limit + 1)
		req, _ := http.NewRequest("POST", e.URL+bt.Base(translate.SideOscred), strings.NewReader(over))
		if chunked {
			req.ContentLength = -1
			req.Body = io.NopCloser(strings.NewReader(over))
		}
		req.Header.Set("X-Auth-Token", bt.Alice)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 || e.Upstream.Requests() != 0 {
			t.Fatalf("chunked=%v: status %d, upstream got %d", chunked, resp.StatusCode, e.Upstream.Requests())
		}
	}
	if r := e.Do("POST", bt.Base(translate.SideOscred), bt.Alice, "application/json", pad(limit)); r.Status != 201 {
		t.Fatalf("a body at the limit: status %d: %s", r.Status, r.Body)
	}
	many := `{"credential":{"user_id":"u-alice"}`
	for i := 0; len(many) < limit-64; i++ {
		many += `,"ſ` + strings.Repeat("é", i%7) + string(rune('a'+i%26)) + strconv.Itoa(i) + `":0`
	}
	if r := e.Do("POST", bt.Base(translate.SideOscred), bt.Alice, "application/json", many+`}`); r.Status != 201 {
		t.Fatalf("thousands of distinct names: status %d: %s", r.Status, r.Body)
	}
	if r := e.Do("POST", bt.Base(translate.SideOscred), bt.Alice, "application/json", many+`,"SA0":1}`); r.Status != 400 {
		t.Fatalf("a repeated name among thousands: status %d: %s", r.Status, r.Body)
	}
}

// TestRedteamMalformedTokens (passes): tokens that are not tokens never reach
// the identity service or the upstream.
func TestRedteamMalformedTokens(t *testing.T) {
	e := trusting(t, translate.SideOscred, nil)
	asks := e.Identity.Requests()
	for _, tok := range []string{"demo-alice-tokén", "demo-alice-token demo-admin-token", strings.Repeat("a", 17<<10), "a,b"} {
		req, _ := http.NewRequest("GET", e.URL+bt.Base(translate.SideOscred), nil)
		req.Header["X-Auth-Token"] = []string{tok}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 && resp.StatusCode != 431 {
			t.Fatalf("%.40q: status %d", tok, resp.StatusCode)
		}
	}
	if e.Identity.Requests() != asks || e.Upstream.Requests() != 0 {
		t.Fatal("a malformed token was sent somewhere")
	}
}
