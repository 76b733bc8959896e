package proxy_test

import (
	"testing"

	"github.com/credbridge/credbridge/config"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/translate"
	"github.com/tidwall/gjson"
)

// Identity look-ups reach the identity service with the caller's token; its
// policy answers, and bad input never leaves the bridge.
func TestIdentityLookups(t *testing.T) {
	e := bt.Start(t, translate.SideOscred, nil)
	cases := []struct {
		name, path, token string
		status            int
		want              string // gjson path that must exist in the answer
		calls             int64  // identity calls: the token check, then the look-up
	}{
		{"own user", "/v3/users/u-alice", bt.Alice, 200, "user.name", 2},
		{"another user: the identity service's 403", "/v3/users/u-bob", bt.Alice, 403, "error.message", 2},
		{"admin reads a user", "/v3/users/u-bob", bt.Admin, 200, "user.id", 2},
		{"unknown user", "/v3/users/u-nobody", bt.Admin, 404, "error.code", 2},
		{"admin finds a user by name", "/v3/users?name=alice", bt.Admin, 200, "users.0.id", 2},
		{"plain user may not list", "/v3/users?name=alice", bt.Alice, 403, "error.code", 2},
		{"own project", "/v3/projects/p-alice", bt.Alice, 200, "project.id", 2},
		{"admin finds a project", "/v3/projects?name=p-alice", bt.Admin, 200, "projects.0.id", 2},
		{"unknown filter refused", "/v3/users?enabled=true", bt.Admin, 400, "error.code", 0},
		{"filter twice refused", "/v3/users?name=a&name=b", bt.Admin, 400, "error.code", 0},
		{"query on a read by id refused", "/v3/users/u-alice?x=1", bt.Alice, 400, "error.code", 0},
		{"bad id refused", "/v3/users/a%20b", bt.Alice, 400, "error.code", 0},
		{"id too long refused", "/v3/users/a123456789a123456789a123456789a123456789a123456789a123456789a1234", bt.Alice, 400, "error.code", 0},
		{"path beyond the id", "/v3/users/u-alice/credentials", bt.Alice, 404, "error.code", 0},
		{"no token", "/v3/users/u-alice", "", 401, "error.code", 0},
		{"invalid token", "/v3/users/u-alice", "not-a-token", 401, "error.code", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.Identity.Requests()
			r := e.Do("GET", c.path, c.token, "", "")
			if r.Status != c.status {
				t.Fatalf("%s: %d %s", c.path, r.Status, r.Body)
			}
			bt.CheckPassedThrough(t, translate.SideKeystone, r)
			if !gjsonHas(r.Body, c.want) {
				t.Fatalf("%s: answer lacks %s: %s", c.path, c.want, r.Body)
			}
			// This bridge validates without a cache: a checked token is one
			// call, a look-up passed on is one more; refused input is none.
			if calls := e.Identity.Requests() - before; calls != c.calls {
				t.Fatalf("%s: identity service saw %d requests, want %d", c.path, calls, c.calls)
			}
		})
	}
}

func gjsonHas(body []byte, path string) bool { return gjson.GetBytes(body, path).Exists() }

func TestIdentityLookupsOff(t *testing.T) {
	e := bt.Start(t, translate.SideOscred, func(c *config.Config) { c.Identity.Lookups = policy.LookupsOff })
	before := e.Identity.Requests()
	r := e.Do("GET", "/v3/users/u-alice", bt.Alice, "", "")
	if r.Status != 404 {
		t.Fatalf("lookups off: %d %s", r.Status, r.Body)
	}
	bt.CheckDialect(t, translate.SideKeystone, r)
	if n := e.Identity.Requests() - before; n != 0 {
		t.Fatalf("lookups off: identity service saw %d requests", n)
	}
}
