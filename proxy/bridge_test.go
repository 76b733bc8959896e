package proxy_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"testing"

	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/translate"
)

var sides = []translate.Side{translate.SideOscred, translate.SideIBM, translate.SideKeystone}

func name(s translate.Side) string { return strings.TrimPrefix(s.String(), "ec2blob-") }

// createBody is what a client of side sends to create a key for user; Keystone
// clients bring their own pair, except toward oscred, which refuses them.
func createBody(client, up translate.Side, user string) string {
	switch client {
	case translate.SideOscred:
		return `{"credential":{"user_id":"` + user + `","description":"ci"}}`
	case translate.SideIBM:
		return `{"credential":{"user_id":"` + user + `","type":"ec2","blob":{"description":"ci"}}}`
	}
	if up == translate.SideOscred {
		return `{"credential":{"user_id":"` + user + `","type":"ec2","blob":"{\"description\":\"ci\"}"}}`
	}
	ak, sk := translate.NewKeyPair()
	return `{"credential":{"user_id":"` + user + `","type":"ec2","blob":"{\"access\":\"` + ak + `\",\"secret\":\"` + sk + `\",\"description\":\"ci\"}"}}`
}

func updateBody(client translate.Side, ak, sk string) string {
	switch client {
	case translate.SideOscred:
		return `{"credential":{"status":"inactive","description":"rotated"}}`
	case translate.SideIBM:
		return `{"credential":{"blob":{"access":"` + ak + `","secret":"` + sk + `","status":"Inactive","description":"rotated"},"type":"ec2","user_id":"u-alice"}}`
	}
	return `{"credential":{"blob":"{\"access\":\"` + ak + `\",\"secret\":\"` + sk + `\",\"status\":\"inactive\",\"description\":\"rotated\"}","type":"ec2","user_id":"u-alice"}}`
}

// keyOf reads access, secret and status from a single-credential answer.
func keyOf(client translate.Side, r *bt.Resp) (ak, sk, status string) {
	c := r.Cred()
	if client == translate.SideOscred {
		ak, _ = c["access"].(string)
		sk, _ = c["secret"].(string)
		status, _ = c["status"].(string)
		return
	}
	b := bt.Blob(c)
	ak, _ = b["access"].(string)
	sk, _ = b["secret"].(string)
	if status, _ = b["status"].(string); status == "" && ak != "" {
		status = "Active" // a Keystone blob without status means active
	}
	return
}

func want(t *testing.T, client translate.Side, r *bt.Resp, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	bt.CheckDialect(t, client, r)
}

// wantFrom is want for an answer that may come from an upstream of the client's
// own dialect, passed through untouched.
func wantFrom(t *testing.T, client, up translate.Side, r *bt.Resp, status int) {
	t.Helper()
	if client != up {
		want(t, client, r, status)
		return
	}
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	bt.CheckPassedThrough(t, client, r)
}

func TestEveryOperationEveryPair(t *testing.T) {
	for _, up := range sides {
		for _, client := range sides {
			t.Run(name(client)+"_to_"+name(up), func(t *testing.T) {
				t.Parallel()
				e := bt.Start(t, up, nil)
				base := bt.Base(client)

				// create, by an administrator for alice
				r := e.Do("POST", base, bt.Admin, bt.CType(client), createBody(client, up, "u-alice"))
				wantFrom(t, client, up, r, 201)
				ak, sk, status := keyOf(client, r)
				c := r.Cred()
				if ak == "" || sk == "" || !strings.EqualFold(status, "active") {
					t.Fatalf("create answer lacks access/secret/status: %s", r.Body)
				}
				if client == translate.SideOscred {
					if c["user_id"] != "u-alice" || c["create_time"] == nil || c["description"] != "ci" {
						t.Fatalf("oscred create answer: %s", r.Body)
					}
				} else {
					if c["id"] != client.ID(ak) || c["type"] != "ec2" || c["user_id"] != "u-alice" || c["project_id"] == "" {
						t.Fatalf("ec2blob create answer: %s", r.Body)
					}
					if _, isString := c["blob"].(string); isString != (client == translate.SideKeystone) {
						t.Fatalf("blob form for %s: %s", client, r.Body)
					}
				}
				k, ok := e.Store.Get(ak)
				if !ok || k.UserID != "u-alice" || !k.Active || k.Description != "ci" || k.SK != sk {
					t.Fatalf("backend after create: %+v (found %v)", k, ok)
				}

				// list, as alice
				r = e.Do("GET", base+"?user_id=u-alice", bt.Alice, "", "")
				wantFrom(t, client, up, r, 200)
				if !strings.Contains(string(r.Body), ak) {
					t.Fatalf("list lacks %s: %s", ak, r.Body)
				}
				if client == translate.SideOscred && strings.Contains(string(r.Body), "secret") {
					t.Fatalf("oscred list shows a secret: %s", r.Body)
				}

				// get, as alice
				r = e.Do("GET", bt.KeyPath(client, ak), bt.Alice, "", "")
				wantFrom(t, client, up, r, 200)
				if gak, gsk, _ := keyOf(client, r); gak != ak || (client == translate.SideOscred && gsk != "") {
					t.Fatalf("get answer: %s", r.Body)
				}
				if client == translate.SideOscred && up != translate.SideOscred {
					// ec2blob keeps no times: copied when the upstream has them, never invented
					if _, has := r.Cred()["create_time"]; has {
						t.Fatalf("create_time invented: %s", r.Body)
					}
				}

				// others may not touch it
				for _, tok := range []string{bt.Bob, bt.TE} {
					r = e.Do(bt.UpdateMethod(client), bt.KeyPath(client, ak), tok, bt.CType(client), updateBody(client, ak, sk))
					wantFrom(t, client, up, r, 403)
					r = e.Do("DELETE", bt.KeyPath(client, ak), tok, "", "")
					wantFrom(t, client, up, r, 403)
				}
				r = e.Do("GET", bt.KeyPath(client, ak), bt.Bob, "", "")
				wantFrom(t, client, up, r, 403)
				if k2, _ := e.Store.Get(ak); k2 != k {
					t.Fatalf("a refused request changed the key: %+v", k2)
				}

				// update, as alice
				r = e.Do(bt.UpdateMethod(client), bt.KeyPath(client, ak), bt.Alice, bt.CType(client), updateBody(client, ak, sk))
				wantFrom(t, client, up, r, 200)
				if gak, _, st := keyOf(client, r); gak != ak || !strings.EqualFold(st, "inactive") {
					t.Fatalf("update answer: %s", r.Body)
				}
				warned := strings.Contains(r.Header.Get("Warning"), "secret not changed")
				if wantWarn := client.Dialect == translate.EC2Blob && up == translate.SideOscred; warned != wantWarn {
					t.Fatalf("Warning header %q (want one: %v)", r.Header.Get("Warning"), wantWarn)
				}
				k, _ = e.Store.Get(ak)
				if k.Active || k.Description != "rotated" || k.SK != sk || k.UserID != "u-alice" {
					t.Fatalf("backend after update: %+v", k)
				}

				// the administrator reads it
				r = e.Do("GET", bt.KeyPath(client, ak), bt.Admin, "", "")
				wantFrom(t, client, up, r, 200)

				// delete, as alice
				r = e.Do("DELETE", bt.KeyPath(client, ak), bt.Alice, "", "")
				wantFrom(t, client, up, r, 204)
				if len(r.Body) != 0 {
					t.Fatalf("204 with a body: %s", r.Body)
				}
				if _, ok := e.Store.Get(ak); ok {
					t.Fatal("key still in the backend after delete")
				}
				r = e.Do("GET", bt.KeyPath(client, ak), bt.Alice, "", "")
				wantFrom(t, client, up, r, 404)
			})
		}
	}
}

func TestQuotaErrorInClientsOwnForm(t *testing.T) {
	quota := map[translate.Side]int{translate.SideOscred: 400, translate.SideIBM: 409, translate.SideKeystone: 403}
	for _, up := range sides {
		for _, client := range sides {
			t.Run(name(client)+"_to_"+name(up), func(t *testing.T) {
				t.Parallel()
				e := bt.Start(t, up, nil)
				for i := 0; i < 2; i++ {
					wantFrom(t, client, up, e.Do("POST", bt.Base(client), bt.Bob, bt.CType(client), createBody(client, up, "u-bob")), 201)
				}
				r := e.Do("POST", bt.Base(client), bt.Bob, bt.CType(client), createBody(client, up, "u-bob"))
				wantFrom(t, client, up, r, quota[client])
				if client == translate.SideOscred && r.JSON()["error_code"] != "akSkNumExceed" {
					t.Fatalf("oscred quota error: %s", r.Body)
				}
				if client == translate.SideKeystone && !strings.Contains(string(r.Body), "Unable to create additional credentials") {
					t.Fatalf("keystone quota error: %s", r.Body)
				}
				if n := len(e.Store.Keys(nil)); n != 2 {
					t.Fatalf("backend holds %d keys", n)
				}
			})
		}
	}
}

func seed(e *bt.Env, user string) (ak, sk string) { return e.Seed(user) }

func seedKey(ak, user string) emulator.Key {
	return emulator.Key{AK: ak, SK: "S", UserID: user, Active: true, StatusSet: true}
}

func TestEC2ToOscredUpdateRules(t *testing.T) {
	e := bt.Start(t, translate.SideOscred, nil)
	ak, _ := seed(e, "u-alice")
	path := bt.KeyPath(translate.SideIBM, ak)
	t.Run("user_id of another user is refused", func(t *testing.T) {
		before := e.Upstream.Requests()
		r := e.Do("PATCH", path, bt.Admin, "application/json", `{"credential":{"blob":{"access":"`+ak+`","status":"Inactive"},"user_id":"u-bob"}}`)
		want(t, translate.SideIBM, r, 400)
		if k, _ := e.Store.Get(ak); !k.Active || k.UserID != "u-alice" {
			t.Fatalf("key changed: %+v", k)
		}
		// only the owner look-up reached the upstream, no PUT
		if n := e.Upstream.Requests() - before; n > 1 {
			t.Fatalf("%d upstream requests for a refused update", n)
		}
	})
	t.Run("a caller who may not touch the key learns nothing about its owner", func(t *testing.T) {
		for _, up := range []translate.Side{translate.SideOscred, translate.SideKeystone} {
			e := bt.Start(t, up, nil)
			ak, _ := e.Seed("u-alice")
			r := e.Do("PATCH", bt.KeyPath(translate.SideIBM, ak), bt.Bob, "application/json",
				`{"credential":{"blob":{"access":"`+ak+`","status":"Inactive"},"user_id":"u-bob"}}`)
			want(t, translate.SideIBM, r, 403)
		}
	})
	t.Run("project_id is echoed, else the caller's", func(t *testing.T) {
		r := e.Do("PATCH", path, bt.Alice, "application/json", `{"credential":{"blob":{"access":"`+ak+`","status":"Active"},"project_id":"p-x"}}`)
		want(t, translate.SideIBM, r, 200)
		if r.Cred()["project_id"] != "p-x" {
			t.Fatalf("project_id: %s", r.Body)
		}
		r = e.Do("PATCH", path, bt.Alice, "application/json", `{"credential":{"blob":{"access":"`+ak+`","description":"d"}}}`)
		want(t, translate.SideIBM, r, 200)
		if r.Cred()["project_id"] != "p-alice" {
			t.Fatalf("project_id: %s", r.Body)
		}
		if k, _ := e.Store.Get(ak); k.Description != "d" {
			t.Fatalf("description not stored: %+v", k)
		}
	})
	t.Run("answer blob in the form the client used", func(t *testing.T) {
		r := e.Do("PATCH", path, bt.Alice, "application/json", `{"credential":{"blob":"{\"access\":\"`+ak+`\",\"status\":\"inactive\"}"}}`)
		want(t, translate.SideIBM, r, 200)
		if _, isString := r.Cred()["blob"].(string); !isString {
			t.Fatalf("string blob in, object out: %s", r.Body)
		}
	})
}

func TestKeystoneIDsResolvedTowardAKUpstreams(t *testing.T) {
	for _, up := range []translate.Side{translate.SideOscred, translate.SideIBM} {
		t.Run(name(up), func(t *testing.T) {
			e := bt.Start(t, up, nil)
			ak, _ := seed(e, "u-alice") // never seen by the bridge: resolved by a list
			r := e.Do("GET", bt.KeyPath(translate.SideKeystone, ak), bt.Alice, "", "")
			want(t, translate.SideKeystone, r, 200)
			if r.Cred()["id"] != translate.HashID(ak) {
				t.Fatalf("id: %s", r.Body)
			}
			r = e.Do("GET", "/v3/credentials/"+translate.HashID("NOSUCHKEY"), bt.Alice, "", "")
			want(t, translate.SideKeystone, r, 404)
			r = e.Do("DELETE", bt.KeyPath(translate.SideKeystone, ak), bt.Alice, "", "")
			want(t, translate.SideKeystone, r, 204)
			if _, ok := e.Store.Get(ak); ok {
				t.Fatal("not deleted")
			}
		})
	}
}

func TestRequestIDKeptOrMade(t *testing.T) {
	e := bt.Start(t, translate.SideOscred, nil)
	r := e.Do("GET", bt.Base(translate.SideOscred), bt.Alice, "", "", "X-Request-Id", "client-chosen-42")
	want(t, translate.SideOscred, r, 200)
	if r.Header.Get("X-Request-Id") != "client-chosen-42" {
		t.Fatalf("X-Request-Id %q", r.Header.Get("X-Request-Id"))
	}
	r = e.Do("GET", bt.Base(translate.SideOscred), "", "", "")
	want(t, translate.SideOscred, r, 401)
}

func TestRoutesNotFoundAndMethodNotAllowed(t *testing.T) {
	e := bt.Start(t, translate.SideOscred, nil)
	tests := []struct {
		method, path string
		side         translate.Side
		status       int
	}{
		{"GET", "/v3.0/OS-CREDENTIAL/nothing", translate.SideOscred, 404},
		{"GET", "/v3/credentials/a/b", translate.SideKeystone, 404},
		{"GET", "/nothing", translate.SideIBM, 404},
		{"PATCH", "/v3.0/OS-CREDENTIAL/credentials/AK", translate.SideOscred, 405},
		{"PUT", "/credentials/AK", translate.SideIBM, 405},
		{"POST", "/v3/credentials/" + translate.HashID("x"), translate.SideKeystone, 405},
	}
	for _, tc := range tests {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			r := e.Do(tc.method, tc.path, bt.Admin, "", "")
			want(t, tc.side, r, tc.status)
		})
	}
	if e.Upstream.Requests() != 0 {
		t.Fatalf("upstream received %d requests", e.Upstream.Requests())
	}
}

func TestSecurityTokens(t *testing.T) {
	e := bt.Start(t, translate.SideOscred, nil)
	r := e.Do("POST", "/v3.0/OS-CREDENTIAL/securitytokens", bt.Alice, "application/json", `{"auth":{"identity":{"methods":["token"]}}}`)
	want(t, translate.SideOscred, r, 201)
	if r.Cred()["securitytoken"] == nil {
		t.Fatalf("answer: %s", r.Body)
	}
	e2 := bt.Start(t, translate.SideIBM, nil)
	r = e2.Do("POST", "/v3.0/OS-CREDENTIAL/securitytokens", bt.Alice, "application/json", `{}`)
	want(t, translate.SideOscred, r, 501)
	if e2.Upstream.Requests() != 0 {
		t.Fatal("sent upstream")
	}
}

func TestPolicyRefusalsSendNothing(t *testing.T) {
	e := bt.Start(t, translate.SideOscred, nil)
	tests := []struct {
		name, token, user string
		status            int
	}{
		{"bob creates for alice", bt.Bob, "u-alice", 403},
		{"te_admin creates for alice", bt.TE, "u-alice", 403},
		{"unknown token", "no-such-token", "u-alice", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do("POST", bt.Base(translate.SideOscred), tc.token, bt.CType(translate.SideOscred), createBody(translate.SideOscred, e.UpSide, tc.user))
			want(t, translate.SideOscred, r, tc.status)
			r = e.Do("GET", bt.Base(translate.SideIBM)+"?user_id="+tc.user, tc.token, "", "")
			want(t, translate.SideIBM, r, tc.status)
		})
	}
	if n := e.Upstream.Requests(); n != 0 {
		t.Fatalf("upstream received %d requests", n)
	}
	if n := len(e.Store.Keys(nil)); n != 0 {
		t.Fatalf("%d keys created", n)
	}
}

func TestListScopedForOwners(t *testing.T) {
	for _, up := range sides {
		t.Run(name(up), func(t *testing.T) {
			e := bt.Start(t, up, nil)
			akA, _ := seed(e, "u-alice")
			akB, _ := seed(e, "u-bob")
			for _, client := range sides {
				r := e.Do("GET", bt.Base(client), bt.Alice, "", "")
				want(t, client, r, 200)
				if !strings.Contains(string(r.Body), client.ID(akA)) || strings.Contains(string(r.Body), akB) || strings.Contains(string(r.Body), translate.HashID(akB)) {
					t.Fatalf("%s list for alice: %s", client, r.Body)
				}
			}
		})
	}
}

// TestOwnerCacheSavesUpstreamGets: an owner's repeated updates cost one owner
// look-up, and a delete forgets the owner.
func TestOwnerCacheSavesUpstreamGets(t *testing.T) {
	e := bt.Start(t, translate.SideOscred, nil)
	ak, sk := e.Seed("u-alice")
	path := bt.KeyPath(translate.SideIBM, ak)
	var costs []int64
	for i := 0; i < 4; i++ {
		before := e.Upstream.Requests()
		r := e.Do("PATCH", path, bt.Alice, "application/json", updateBody(translate.SideIBM, ak, sk))
		want(t, translate.SideIBM, r, 200)
		costs = append(costs, e.Upstream.Requests()-before)
	}
	if costs[0] != 2 || costs[1] != 1 || costs[2] != 1 || costs[3] != 1 {
		t.Fatalf("upstream requests per update: %v (want a GET only the first time)", costs)
	}
	want(t, translate.SideIBM, e.Do("DELETE", path, bt.Alice, "", ""), 204)
	before := e.Upstream.Requests()
	r := e.Do("PATCH", path, bt.Alice, "application/json", updateBody(translate.SideIBM, ak, sk))
	want(t, translate.SideIBM, r, 404)
	if e.Upstream.Requests()-before != 1 {
		t.Fatal("a deleted key's owner was still cached")
	}
}

// TestAccessLineShapes: the hand-encoded access line has the slog line's fields.
func TestAccessLineShapes(t *testing.T) {
	var viaSlog, direct bytes.Buffer
	keys := func(b *bytes.Buffer) []string {
		var m map[string]any
		line := strings.SplitN(b.String(), "\n", 2)[0]
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	log := slog.New(slog.NewJSONHandler(&viaSlog, nil))
	e1 := bt.Start(t, translate.SideOscred, nil, proxy.Deps{Log: log})
	e1.Do("GET", "/credentials", bt.Alice, "", "", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	e2 := bt.Start(t, translate.SideOscred, nil, proxy.Deps{Log: slog.New(slog.NewJSONHandler(&direct, nil)), AccessLog: &direct})
	e2.Do("GET", "/credentials", bt.Alice, "", "", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	a, b := keys(&viaSlog), keys(&direct)
	if strings.Join(a, ",") != strings.Join(b, ",") || len(a) < 12 {
		t.Fatalf("slog %v\ndirect %v", a, b)
	}
	if !strings.Contains(direct.String(), `"user_id":"u-alice"`) || !strings.Contains(direct.String(), `"status":200`) {
		t.Fatalf("direct line: %s", direct.String())
	}
}

// TestOscredListWithoutUserIsOwnKeys: an administrator's oscred list without
// user_id shows the caller's own keys on every upstream; an ec2blob client's
// shows what Keystone would (all the administrator may see).
func TestOscredListWithoutUserIsOwnKeys(t *testing.T) {
	for _, up := range sides {
		t.Run(name(up), func(t *testing.T) {
			e := bt.Start(t, up, nil)
			mine, _ := e.Seed("u-admin")
			alices, _ := e.Seed("u-alice")
			r := e.Do("GET", bt.Base(translate.SideOscred), bt.Admin, "", "")
			want(t, translate.SideOscred, r, 200)
			if !strings.Contains(string(r.Body), mine) || strings.Contains(string(r.Body), alices) {
				t.Fatalf("oscred list: %s", r.Body)
			}
			if up != translate.SideOscred {
				r = e.Do("GET", bt.Base(translate.SideIBM), bt.Admin, "", "")
				want(t, translate.SideIBM, r, 200)
				if !strings.Contains(string(r.Body), alices) {
					t.Fatalf("ec2blob admin list: %s", r.Body)
				}
			}
		})
	}
}
