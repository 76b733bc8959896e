package app

import (
	"strings"
	"testing"

	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/translate"
)

// Red-team probes of the migrate commands (issue #16): each test is an abuse
// or a bad week an operator may have, against the reference servers over
// real HTTP.

// TestRedteamPruneNeverDeletesAPrimaryKey: a key the primary holds for
// u-bob sits on the secondary under u-alice (moved by hand, or a user map
// edited). Read user by user it looks "only on the secondary" for alice and
// "missing" for bob: sync --prune must not delete it, sync must not count it
// created, and verify must name the owner conflict.
func TestRedteamPruneNeverDeletesAPrimaryKey(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	const ak, sk = "AKMOVEDOWNER0001", "moved-owner-secret-xxxxxxxxxxxxxxxxxxxx"
	c.store.Put(emulator.Key{AK: ak, SK: sk, UserID: "u-bob", ProjectID: "p-demo", Active: true, StatusSet: true})
	sec.store.Put(emulator.Key{AK: ak, SK: sk, UserID: "u-alice", ProjectID: "p-demo", Active: true, StatusSet: true})
	cfg := migrateConfig(t, c, translate.SideIBM, sec)

	s := migrateRun(t, cfg, MigrateOptions{Command: "sync", Prune: true})
	got, ok := sec.store.Get(ak)
	if !ok {
		t.Fatalf("sync --prune deleted a key the primary holds (for another owner):\n%s%s", s.stdout, s.stderr)
	}
	if got.UserID != "u-alice" || got.SK != sk {
		t.Fatalf("sync rewrote the key: %+v", got)
	}
	if s.code != ExitDiffers || summary(s.stdout, "created") != 0 || summary(s.stdout, "pruned") != 0 {
		t.Fatalf("sync of an owner conflict: exit %d, want 1, nothing created or pruned\n%s", s.code, s.stdout)
	}
	v := migrateRun(t, cfg, MigrateOptions{Command: "verify", JSON: true})
	r := decodeReport(t, v)
	owner := false
	for _, d := range r.Divergences {
		owner = owner || d.Kind == "owner" && d.Access == ak
	}
	if v.code != ExitDiffers || !owner {
		t.Fatalf("verify: exit %d, %+v; want 1 and an owner divergence for %s", v.code, r.Divergences, ak)
	}
	noSecretIn(t, "migrate", map[string]emulator.Key{ak: {AK: ak, SK: sk}}, s, v)
	if strings.Contains(s.stdout, "missing_on_primary") {
		t.Fatalf("sync calls a key the primary holds missing on it:\n%s", s.stdout)
	}
}
