package proxy_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbridge/credbridge/audit"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/translate"
)

// TestRetainedStatesSurviveAnswerReuse: what the bridge keeps past a request
// out of upstream answers (pooled buffers the next answer overwrites) -- the
// seen-keys map (Keystone id -> AK), the owner cache, the audit trail -- still
// reads what it was told after many later answers went through the same
// buffers. With seenKeys.add's copy taken out, alice's gets by id fail (404 for
// a key whose bytes are another answer's) and the audit names `X2RIAQ...",`.
func TestRetainedStatesSurviveAnswerReuse(t *testing.T) {
	out := &bt.SyncBuffer{}
	aw := audit.NewWriter(out, time.Hour)
	e := bt.Start(t, translate.SideIBM, nil, proxy.Deps{Audit: aw})
	const n = 24
	var alice, bob []string
	for i := 0; i < n; i++ {
		ak, _ := e.Seed("u-alice")
		alice = append(alice, ak)
		ak, _ = e.Seed("u-bob")
		bob = append(bob, ak)
	}
	// alice's list teaches the bridge her AKs by hash (seenKeys).
	if r := e.Do("GET", "/v3/credentials", bt.Alice, "", ""); r.Status != 200 {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	// alice's GETs by Keystone id put her keys' owners in the owner cache.
	for _, ak := range alice {
		if r := e.Do("GET", bt.KeyPath(translate.SideKeystone, ak), bt.Alice, "", ""); r.Status != 200 {
			t.Fatalf("get %s: %d %s", ak, r.Status, r.Body)
		}
	}
	// Churn: bob's answers (same shapes, other bytes) through the same pools.
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				e.Do("GET", "/v3/credentials", bt.Bob, "", "")
				e.Do("GET", bt.KeyPath(translate.SideIBM, bob[i%n]), bt.Bob, "", "")
			}
		}()
	}
	wg.Wait()
	// Probe: bob deleting alice's keys is decided from the cached owner.
	for _, ak := range alice {
		if r := e.Do("DELETE", bt.KeyPath(translate.SideIBM, ak), bt.Bob, "", ""); r.Status != 403 {
			t.Errorf("bob deleting alice's %s: %d %s (owner cache read another answer?)", ak, r.Status, r.Body)
		}
	}
	// Probe: alice's GET by Keystone id resolves through seenKeys with one upstream call.
	for _, ak := range alice {
		before := e.Upstream.Requests()
		r := e.Do("GET", bt.KeyPath(translate.SideKeystone, ak), bt.Alice, "", "")
		if r.Status != 200 || bt.Blob(r.Cred())["access"] != ak {
			t.Errorf("get %s by id: %d %s", ak, r.Status, r.Body)
		}
		if d := e.Upstream.Requests() - before; d != 1 {
			t.Errorf("get %s by id cost %d upstream calls (seenKeys lost or corrupted)", ak, d)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	// Audit: every event names a well-formed key and a real owner.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3*n {
		t.Fatalf("%d audit lines, want at least %d", len(lines), 3*n)
	}
	for _, line := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		ak, _ := ev["target_access_key"].(string)
		owner, _ := ev["target_owner"].(string)
		if ak != "" && !translate.ValidID(translate.SideIBM, ak) {
			t.Errorf("audit target %q", ak)
		}
		if owner != "" && owner != "u-alice" && owner != "u-bob" {
			t.Errorf("audit owner %q", owner)
		}
	}
}
