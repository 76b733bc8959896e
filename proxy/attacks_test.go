package proxy_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/telemetry"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// The attacks of dialects.md "Rules no client can get around", each by a plain
// user with a valid token, against upstreams that trust the bridge completely
// (upstream.auth.mode token with an administrator's token): the bridge is the
// only thing deciding, so each must be refused by it, and the upstream must
// receive nothing that could change anything.

// trusting starts a bridge whose upstream (of side up) takes the bridge's
// service token, an administrator's, for every call.
func trusting(t *testing.T, up translate.Side, mutate func(*config.Config)) *bt.Env {
	t.Helper()
	file := filepath.Join(t.TempDir(), "service-token")
	if err := os.WriteFile(file, []byte(bt.Admin), 0o600); err != nil {
		t.Fatal(err)
	}
	return bt.Start(t, up, func(c *config.Config) {
		c.Upstream.Auth.Mode, c.Upstream.Auth.TokenFile = "token", file
		if mutate != nil {
			mutate(c)
		}
	}, proxy.Deps{Tokens: upstream.StaticToken(bt.Admin)})
}

// createBodies are creates for u-bob's account sent by Alice, hidden so that a
// parser reading the first (or only the exact-case) member sees u-alice.
func createBodies(client translate.Side) map[string]string {
	if client == translate.SideOscred {
		return map[string]string{
			"two credentials":         `{"credential":{"user_id":"u-alice"},"credential":{"user_id":"u-bob"}}`,
			"escaped second":          `{"credential":{"user_id":"u-alice"},"cred\u0065ntial":{"user_id":"u-bob"}}`,
			"two user ids":            `{"credential":{"user_id":"u-alice","user_id":"u-bob"}}`,
			"user id in another case": `{"credential":{"user_id":"u-alice","User_Id":"u-bob"}}`,
			"user id only in caps":    `{"credential":{"USER_ID":"u-bob"}}`,
			"folded credential":       `{"credential":{"user_id":"u-alice"},"CREDENTIAL":{"user_id":"u-bob"}}`,
		}
	}
	blob := `{"description":"x"}`
	if client == translate.SideKeystone {
		blob = `"{\"access\":\"ATTACKERCHOSEN000001\",\"secret\":\"attacker-knows-this\"}"`
	}
	b := map[string]string{
		"two credentials":         `{"credential":{"user_id":"u-alice","type":"ec2","blob":` + blob + `},"credential":{"user_id":"u-bob","type":"ec2","blob":` + blob + `}}`,
		"escaped second":          `{"credential":{"user_id":"u-alice","type":"ec2","blob":` + blob + `},"cred\u0065ntial":{"user_id":"u-bob","type":"ec2","blob":` + blob + `}}`,
		"two user ids":            `{"credential":{"user_id":"u-alice","type":"ec2","blob":` + blob + `,"user_id":"u-bob"}}`,
		"escaped user id":         `{"credential":{"user_id":"u-alice","type":"ec2","blob":` + blob + `,"user\u005fid":"u-bob"}}`,
		"user id in another case": `{"credential":{"user_id":"u-alice","type":"ec2","blob":` + blob + `,"uSer_id":"u-bob"}}`,
	}
	if client == translate.SideKeystone {
		b["two secrets in the string blob"] = `{"credential":{"user_id":"u-alice","type":"ec2","blob":"{\"access\":\"ATTACKERCHOSEN000002\",\"secret\":\"a\",\"secret\":\"b\"}"}}`
		b["escaped access in the string blob"] = `{"credential":{"user_id":"u-alice","type":"ec2","blob":"{\"access\":\"ATTACKERCHOSEN000003\",\"acc\\u0065ss\":\"ATTACKERCHOSEN000004\",\"secret\":\"s\"}"}}`
	}
	return b
}

func TestAttackDuplicateMembersOnCreate(t *testing.T) {
	for _, up := range sides {
		for _, client := range sides {
			for name, body := range createBodies(client) {
				t.Run(up.String()+"/"+client.String()+"/"+name, func(t *testing.T) {
					e := trusting(t, up, nil)
					r := e.Do("POST", bt.Base(client), bt.Alice, bt.CType(client), body)
					if r.Status != 400 {
						t.Fatalf("status %d: %s", r.Status, r.Body)
					}
					bt.CheckDialect(t, client, r)
					if n := e.Upstream.Requests(); n != 0 {
						t.Fatalf("the upstream received %d requests", n)
					}
					if keys := e.Store.Keys(func(k emulator.Key) bool { return k.UserID == "u-bob" }); len(keys) != 0 {
						t.Fatalf("u-bob has keys %v", keys)
					}
				})
			}
		}
	}
}

// TestAttackUpdateMovesKey: an update naming another owner, in every dialect
// and direction; the same-dialect paths forward the client's body, so they are
// the ones that must check it.
func TestAttackUpdateMovesKey(t *testing.T) {
	for _, up := range sides {
		for _, client := range sides {
			t.Run(up.String()+"/"+client.String(), func(t *testing.T) {
				e := trusting(t, up, nil)
				ak, sk := e.Seed("u-alice")
				body := `{"credential":{"status":"inactive","user_id":"u-bob"}}`
				if client.Dialect == translate.EC2Blob {
					blob := `{"access":"` + ak + `","secret":"` + sk + `","status":"Inactive"}`
					if client == translate.SideKeystone {
						blob = `"{\"access\":\"` + ak + `\",\"secret\":\"` + sk + `\",\"status\":\"Inactive\"}"`
					}
					body = `{"credential":{"blob":` + blob + `,"type":"ec2","user_id":"u-bob"}}`
				}
				r := e.Do(bt.UpdateMethod(client), bt.KeyPath(client, ak), bt.Alice, bt.CType(client), body)
				if r.Status != 400 || !strings.Contains(string(r.Body), "cannot move a key") {
					t.Fatalf("status %d: %s", r.Status, r.Body)
				}
				bt.CheckDialect(t, client, r)
				if n := e.Received.Writes(); n != 0 {
					t.Fatalf("the upstream received %d writes", n)
				}
				if k, _ := e.Store.Get(ak); k.UserID != "u-alice" || !k.Active {
					t.Fatalf("key now %+v", k)
				}
			})
		}
	}
}

// TestAttackTemporaryKeysWithServiceToken: temporary keys are issued for the
// header token's owner, so the bridge's own token must never go with them.
func TestAttackTemporaryKeysWithServiceToken(t *testing.T) {
	e := trusting(t, translate.SideOscred, nil)
	r := e.Do("POST", "/v3.0/OS-CREDENTIAL/securitytokens", bt.Alice, "application/json", `{"auth":{"identity":{"methods":["token"]}}}`)
	if r.Status != 201 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	seen := e.Received.All()
	if len(seen) != 1 || seen[0].Header.Get("X-Auth-Token") != bt.Alice {
		t.Fatalf("the upstream received %+v", seen)
	}
	r = e.Do("POST", "/v3.0/OS-CREDENTIAL/securitytokens", bt.Alice, "application/json", `{"auth":{"identity":{"methods":["token"]}},"auth":{"identity":{"methods":["password"]}}}`)
	if r.Status != 400 || len(e.Received.All()) != 1 {
		t.Fatalf("duplicate auth: status %d, upstream got %d", r.Status, len(e.Received.All()))
	}
}

// TestAttackTwoTokens: which of two tokens would a backend read? Neither is used.
func TestAttackTwoTokens(t *testing.T) {
	for _, client := range sides {
		t.Run(client.String(), func(t *testing.T) {
			e := trusting(t, translate.SideOscred, nil)
			asks := e.Identity.Requests()
			for _, toks := range [][]string{{bt.Alice, bt.Admin}, {bt.Admin, bt.Alice}, {bt.Alice + "," + bt.Admin}, {bt.Alice, ""}} {
				req, _ := http.NewRequest("GET", e.URL+bt.Base(client), nil)
				for _, tok := range toks {
					req.Header.Add("X-Auth-Token", tok)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 401 {
					t.Fatalf("%q: status %d: %s", toks, resp.StatusCode, body)
				}
				bt.CheckDialect(t, client, &bt.Resp{Status: resp.StatusCode, Header: resp.Header, Body: body})
			}
			if e.Upstream.Requests() != 0 || e.Identity.Requests() != asks {
				t.Fatal("a token was validated or something forwarded")
			}
		})
	}
}

// TestAttackClientTraceHeaders: only valid W3C trace context crosses the bridge.
func TestAttackClientTraceHeaders(t *testing.T) {
	const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tracing := range []bool{false, true} {
		deps := proxy.Deps{Tokens: upstream.StaticToken(bt.Admin)}
		if tracing {
			tel, err := telemetry.New(telemetry.Options{Exporter: tracetest.NewInMemoryExporter(), Sync: true, Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			deps.Telemetry = tel
		}
		e := bt.Start(t, translate.SideOscred, nil, deps)
		for _, tc := range []struct {
			name      string
			hdr       []string
			wantState string
		}{
			{"huge traceparent", []string{"Traceparent", "00-" + strings.Repeat("a", 60<<10)}, ""},
			{"malformed traceparent", []string{"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx"}, ""},
			{"baggage", []string{"Traceparent", good, "Baggage", "user=admin", "Tracestate", "a=b"}, "a=b"},
			{"huge tracestate", []string{"Traceparent", good, "Tracestate", "a=" + strings.Repeat("b", 10<<10)}, ""},
			{"other headers", []string{"X-Forwarded-For", "10.0.0.1", "X-Roles", "admin", "X-User-Id", "u-admin"}, ""},
		} {
			before := len(e.Received.All())
			r := e.Do("GET", bt.Base(translate.SideOscred), bt.Alice, "", "", tc.hdr...)
			if r.Status != 200 {
				t.Fatalf("%s: status %d", tc.name, r.Status)
			}
			got := e.Received.All()[before:]
			for _, s := range got {
				tp := s.Header.Get("Traceparent")
				if tp != "" && !translate.ValidTraceparent(tp) || len(tp) > 55 {
					t.Fatalf("tracing=%v %s: traceparent %.80q forwarded", tracing, tc.name, tp)
				}
				if tc.name == "baggage" && !tracing && tp != good {
					t.Fatalf("a valid traceparent was not carried on: %q", tp)
				}
				for _, h := range []string{"Baggage", "X-Forwarded-For", "X-Roles", "X-User-Id"} {
					if v := s.Header.Get(h); v != "" {
						t.Fatalf("tracing=%v %s: %s: %s forwarded", tracing, tc.name, h, v)
					}
				}
				if ts := s.Header.Get("Tracestate"); ts != tc.wantState {
					t.Fatalf("tracing=%v %s: tracestate %.80q", tracing, tc.name, ts)
				}
			}
		}
	}
}

// TestAttackHostHeaderInLinks: Keystone links come from public_url, never the
// client's Host, and a Keystone upstream's own address is not shown.
func TestAttackHostHeaderInLinks(t *testing.T) {
	for _, up := range sides {
		t.Run(up.String(), func(t *testing.T) {
			e := trusting(t, up, func(c *config.Config) { c.PublicURL = "https://keys.example.com" })
			ak, _ := e.Seed("u-alice")
			for _, path := range []string{bt.KeyPath(translate.SideKeystone, ak), bt.Base(translate.SideKeystone)} {
				req, _ := http.NewRequest("GET", e.URL+path, nil)
				req.Header.Set("X-Auth-Token", bt.Alice)
				req.Host = "evil.example"
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), `"https://keys.example.com/v3/credentials`) {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				for _, bad := range []string{"evil.example", strings.TrimPrefix(e.UpURL, "http://")} {
					if strings.Contains(string(body), bad) {
						t.Fatalf("answer names %s: %s", bad, body)
					}
				}
			}
		})
	}
}
