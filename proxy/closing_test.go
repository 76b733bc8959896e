package proxy_test

import (
	"net/http"
	"testing"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/internal/testing/backend"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/internal/testing/mixed"
	"github.com/credbridge/credbridge/translate"
)

// TestMixedAgainstClosingServer: 1,000 mixed operations, a third of them
// updates (GET then PATCH or PUT upstream), through the bridge to a backend
// that closes every connection after its answer without saying so, as uwsgi
// does (issue 13): not one may fail.
func TestMixedAgainstClosingServer(t *testing.T) {
	for _, up := range sides {
		t.Run(name(up), func(t *testing.T) {
			b := backend.Start(t, up, emulator.Conns{CloseAfterAnswer: true})
			e := bt.Start(t, up, func(c *config.Config) { c.Upstream.URL = b.URL })
			res := mixed.Run(e.URL, up, []mixed.Caller{{Token: bt.Alice, UserID: "u-alice", ProjectID: "p-alice"}, {Token: bt.Bob, UserID: "u-bob", ProjectID: "p-bob"}}, 1000)
			t.Logf("against %s closing after each answer: %s; the backend saw %d requests on %d connections",
				up, res, b.Requests(), b.Conns())
			if res.Failures != 0 || res.Ops != 1000 || res.Updates < 333 {
				t.Fatalf("%s\nfirst failures: %q", res, res.Failed)
			}
			if b.Conns() < b.Requests() {
				t.Fatalf("%d connections for %d requests: the backend did not close each", b.Conns(), b.Requests())
			}
		})
	}
}

// TestMixedAgainstShortKeepAlive: the same against a backend whose idle
// keep-alive timeout (1 ms) is far below the pool's.
func TestMixedAgainstShortKeepAlive(t *testing.T) {
	b := backend.Start(t, translate.SideIBM, emulator.Conns{IdleTimeout: 1e6})
	e := bt.Start(t, translate.SideIBM, func(c *config.Config) { c.Upstream.URL = b.URL })
	res := mixed.Run(e.URL, translate.SideIBM, []mixed.Caller{{Token: bt.Alice, UserID: "u-alice", ProjectID: "p-alice"}, {Token: bt.Bob, UserID: "u-bob", ProjectID: "p-bob"}}, 300)
	t.Logf("%s; %d requests on %d connections", res, b.Requests(), b.Conns())
	if res.Failures != 0 || res.Ops != 300 {
		t.Fatalf("%s\nfirst failures: %q", res, res.Failed)
	}
}

// A create toward oscred whose answer was lost (the backend made the key, then
// the connection died; the bridge sent it on a connection of its own) is not
// sent again: the backend saw it once and holds
// one key, and the client learns the outcome is unknown (502).
func TestCreateTowardOscredNotResent(t *testing.T) {
	lose := func(r *http.Request, _ int64) bool { return r.Method == http.MethodPost }
	b := backend.Start(t, translate.SideOscred, emulator.Conns{LoseAnswer: lose})
	e := bt.Start(t, translate.SideOscred, func(c *config.Config) { c.Upstream.URL = b.URL })
	if r := e.Do("GET", bt.Base(translate.SideOscred), bt.Alice, "", ""); r.Status != 200 {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	before := b.Requests()
	r := e.Do("POST", bt.Base(translate.SideOscred), bt.Alice, bt.CType(translate.SideOscred), `{"credential":{"user_id":"u-alice"}}`)
	want(t, translate.SideOscred, r, 502)
	if got := b.Requests() - before; got != 1 {
		t.Fatalf("the backend received the create %d times", got)
	}
	if keys := b.Store.Keys(func(k emulator.Key) bool { return k.UserID == "u-alice" }); len(keys) != 1 {
		t.Fatalf("u-alice holds %d keys after one create", len(keys))
	}
}
