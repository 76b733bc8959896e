package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/translate"
)

// migrateRun runs one migrate command against cfg's sides and returns its
// exit code and what it printed.
type migrateOut struct {
	code           int
	stdout, stderr string
}

func migrateRun(t *testing.T, cfg *config.Config, o MigrateOptions) migrateOut {
	t.Helper()
	return migrateRunCtx(t, context.Background(), cfg, o)
}

func migrateRunCtx(t *testing.T, ctx context.Context, cfg *config.Config, o MigrateOptions) migrateOut {
	t.Helper()
	var out, errb bytes.Buffer
	o.Stdout, o.Stderr = &out, &errb
	code := Migrate(ctx, cfg, o)
	return migrateOut{code, out.String(), errb.String()}
}

// migrateConfig is a config with c as the primary (its side's dialect, the
// service token) and sec as the secondary; extra env last.
func migrateConfig(t *testing.T, c *cloud, side translate.Side, sec *secondaryCloud, extra ...string) *config.Config {
	t.Helper()
	env := []string{"CREDBRIDGE_UPSTREAM_URL=" + c.upURL, "CREDBRIDGE_IDENTITY_URL=" + c.idURL,
		"CREDBRIDGE_UPSTREAM_AUTH_MODE=token", "CREDBRIDGE_UPSTREAM_AUTH_TOKEN_FILE=" + secretFile(t, "demo-service-token"),
		"CREDBRIDGE_MIGRATION_DEFAULT_PROJECT=p-demo",
		"CREDBRIDGE_MIGRATION_SYNC_JOURNAL=" + filepath.Join(t.TempDir(), "sync.db")}
	switch side {
	case translate.SideIBM:
		env = append(env, "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR=ibm")
	case translate.SideKeystone:
		env = append(env, "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR=keystone")
	}
	env = append(append(env, migrationEnv(t, sec, "mirror", fileJournal(t))...), extra...)
	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// seedKeys puts n keys per user straight into a backend's store: keys that
// existed before the bridge was put in front.
func seedKeys(s *emulator.Store, users []string, n int) map[string]emulator.Key {
	out := map[string]emulator.Key{}
	for i, u := range users {
		for j := 0; j < n; j++ {
			k := emulator.Key{AK: fmt.Sprintf("AKSEED%04d%02d", i, j), SK: fmt.Sprintf("seed-secret-%04d-%02d-xxxxxxxxxxxxxxxx", i, j),
				UserID: u, ProjectID: "p-demo", Active: j%2 == 0, StatusSet: true,
				Description: fmt.Sprintf("seeded %d", j), HasDesc: true, Created: time.Now()}
			s.Put(k)
			out[k.AK] = k
		}
	}
	return out
}

var demoUserIDs = []string{"u-admin", "u-alice", "u-bob", "u-svc", "u-te"}

// noSecretIn fails when any seeded secret shows in what a command printed.
func noSecretIn(t *testing.T, what string, keys map[string]emulator.Key, outs ...migrateOut) {
	t.Helper()
	for _, o := range outs {
		if strings.Contains(o.stdout+o.stderr, "demo-service-token") {
			t.Fatalf("%s printed the service token", what)
		}
		for _, k := range keys {
			if strings.Contains(o.stdout+o.stderr, k.SK) {
				t.Fatalf("%s printed the secret of %s", what, k.AK)
			}
		}
	}
}

// summary is the number at the end of the summary line starting with label
// (-1 when there is none).
func summary(out, label string) int {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); strings.HasPrefix(l, label) && len(f) > 1 {
			if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
				return n
			}
		}
	}
	return -1
}

type reportView struct {
	Primary, Secondary struct{ Dialect, Flavor, URL string }
	Keys               struct{ Primary, Secondary, Matched int }
	Divergences        []struct{ Kind, Access, Owner, Primary, Secondary string }
}

func decodeReport(t *testing.T, o migrateOut) reportView {
	t.Helper()
	var r reportView
	if err := json.Unmarshal([]byte(o.stdout), &r); err != nil {
		t.Fatalf("verify --json printed something that is not JSON: %v\n%s", err, o.stdout)
	}
	return r
}

// TestMigrateSyncFromIBM: keys that existed on an IBM-style primary before
// the bridge are missing on a Keystone secondary; sync copies them whole and
// verify then exits 0. Nothing printed holds a secret.
func TestMigrateSyncFromIBM(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	keys := seedKeys(c.store, demoUserIDs, 2)
	cfg := migrateConfig(t, c, translate.SideIBM, sec)

	before := migrateRun(t, cfg, MigrateOptions{Command: "verify", JSON: true})
	if before.code != ExitDiffers {
		t.Fatalf("verify before sync: exit %d, want 1\n%s%s", before.code, before.stdout, before.stderr)
	}
	r := decodeReport(t, before)
	if len(r.Divergences) != len(keys) || r.Keys.Primary != len(keys) || r.Keys.Secondary != 0 || r.Primary.Dialect != "ec2blob" || r.Primary.Flavor != "ibm" || r.Secondary.Flavor != "keystone" {
		t.Fatalf("verify before sync = %+v; want every seeded key missing on the secondary", r)
	}
	for _, d := range r.Divergences {
		if d.Kind != "missing_on_secondary" || keys[d.Access].UserID != d.Owner {
			t.Fatalf("divergence %+v; want missing_on_secondary with the key's owner", d)
		}
	}
	plan := migrateRun(t, cfg, MigrateOptions{Command: "plan", JSON: true})
	var p struct {
		Creates []struct {
			Access, Owner string
			Secret        bool
		}
		NeedsRekey []json.RawMessage `json:"needs_rekey"`
	}
	if err := json.Unmarshal([]byte(plan.stdout), &p); err != nil || plan.code != 0 || len(p.Creates) != len(keys) || len(p.NeedsRekey) != 0 || !p.Creates[0].Secret {
		t.Fatalf("plan: exit %d, %+v (%v)\n%s", plan.code, p, err, plan.stdout)
	}
	dry := migrateRun(t, cfg, MigrateOptions{Command: "sync", DryRun: true})
	if dry.code != ExitDiffers || len(sec.store.Keys(nil)) != 0 {
		t.Fatalf("sync --dry-run: exit %d, %d keys on the secondary; want 1 and none written", dry.code, len(sec.store.Keys(nil)))
	}

	sync := migrateRun(t, cfg, MigrateOptions{Command: "sync"})
	if sync.code != ExitOK || summary(sync.stdout, "created") != len(keys) {
		t.Fatalf("sync: exit %d\n%s%s", sync.code, sync.stdout, sync.stderr)
	}
	for ak, want := range keys {
		got, ok := sec.store.Get(ak)
		if !ok || got.SK != want.SK || got.Active != want.Active || got.Description != want.Description || got.UserID != want.UserID {
			t.Fatalf("secondary %s = %+v (found %v); want the primary's pair, status, description and owner", ak, got, ok)
		}
	}
	after := migrateRun(t, cfg, MigrateOptions{Command: "verify", JSON: true})
	if r := decodeReport(t, after); after.code != ExitOK || len(r.Divergences) != 0 || r.Keys.Matched != len(keys) {
		t.Fatalf("verify after sync: exit %d, %+v", after.code, r)
	}
	again := migrateRun(t, cfg, MigrateOptions{Command: "sync"})
	if again.code != ExitOK || summary(again.stdout, "created") != 0 {
		t.Fatalf("a second sync: exit %d\n%s", again.code, again.stdout)
	}
	noSecretIn(t, "migrate", keys, before, plan, dry, sync, after, again)
	if !strings.Contains(sync.stderr, fmt.Sprintf("syncing: %d/%d (100%%)", len(keys), len(keys))) {
		t.Fatalf("no progress lines off a terminal:\n%s", sync.stderr)
	}
}

// TestMigrateNeedsRekeyFromOscred: an oscred primary never returns a secret,
// so its keys are needs_rekey: listed with their owners, never created on the
// secondary with another secret, and sync exits 1.
func TestMigrateNeedsRekeyFromOscred(t *testing.T) {
	c := newCloud(t, translate.SideOscred)
	sec := newSecondaryCloud(t, c.dir, true)
	keys := seedKeys(c.store, []string{"u-alice", "u-bob"}, 1)
	cfg := migrateConfig(t, c, translate.SideOscred, sec)

	plan := migrateRun(t, cfg, MigrateOptions{Command: "plan", JSON: true})
	var p struct {
		Creates    []json.RawMessage
		NeedsRekey []struct{ Access, Owner string } `json:"needs_rekey"`
	}
	if err := json.Unmarshal([]byte(plan.stdout), &p); err != nil || len(p.Creates) != 0 || len(p.NeedsRekey) != len(keys) {
		t.Fatalf("plan = %+v (%v)\n%s", p, err, plan.stdout)
	}
	for _, n := range p.NeedsRekey {
		if keys[n.Access].UserID != n.Owner {
			t.Fatalf("needs_rekey %+v: wrong owner", n)
		}
	}
	sync := migrateRun(t, cfg, MigrateOptions{Command: "sync"})
	if sync.code != ExitDiffers || summary(sync.stdout, "needs_rekey") != 2 || sec.posts.Load() != 0 {
		t.Fatalf("sync: exit %d, %d creates sent\n%s", sync.code, sec.posts.Load(), sync.stdout)
	}
	verify := migrateRun(t, cfg, MigrateOptions{Command: "verify", JSON: true})
	r := decodeReport(t, verify)
	if verify.code != ExitDiffers || len(r.Divergences) != 2 || r.Divergences[0].Kind != "needs_rekey" {
		t.Fatalf("verify: exit %d, %+v", verify.code, r)
	}
}

// TestMigrateVerifyKinds: every difference sync leaves or fixes is reported
// by kind, a secret only as a fingerprint; sync fixes status and
// description, deletes secondary-only keys only with --prune, and never
// overwrites another secret.
func TestMigrateVerifyKinds(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	keys := seedKeys(c.store, []string{"u-alice", "u-bob"}, 2) // AKSEED0000.. alice, AKSEED0001.. bob
	// On the secondary: alice's first key inactive and redescribed, her
	// second with another secret; bob's first as on the primary; a key only
	// the secondary has.
	k := keys["AKSEED000000"]
	k.Active, k.Description = false, "changed"
	sec.store.Put(k)
	k2 := keys["AKSEED000001"]
	k2.SK = "another-secret-entirely-xxxxxxxxxxxxxxx"
	sec.store.Put(k2)
	sec.store.Put(keys["AKSEED000100"])
	sec.store.Put(emulator.Key{AK: "AKONLYSECONDARY", SK: "only-secondary-secret-xxxxxxxxxxxxxxxxxx", UserID: "u-bob", ProjectID: "p-demo", Active: true})
	cfg := migrateConfig(t, c, translate.SideIBM, sec)

	v := migrateRun(t, cfg, MigrateOptions{Command: "verify", JSON: true})
	r := decodeReport(t, v)
	kinds := map[string]string{}
	for _, d := range r.Divergences {
		kinds[d.Kind] += d.Access + " "
		if d.Kind == "secret" && (len(d.Primary) != 16 || len(d.Secondary) != 16 || d.Primary == d.Secondary) {
			t.Fatalf("secret divergence %+v: want two different 16-hex fingerprints", d)
		}
	}
	want := map[string]string{"status": "AKSEED000000 ", "description": "AKSEED000000 ", "secret": "AKSEED000001 ",
		"missing_on_secondary": "AKSEED000101 ", "missing_on_primary": "AKONLYSECONDARY "}
	for kind, aks := range want {
		if kinds[kind] != aks {
			t.Errorf("%s: %q, want %q", kind, kinds[kind], aks)
		}
	}
	if v.code != ExitDiffers || len(r.Divergences) != len(want) || r.Keys.Matched != 1 {
		t.Fatalf("verify: exit %d, %+v", v.code, r)
	}
	again := migrateRun(t, cfg, MigrateOptions{Command: "verify", JSON: true})
	if again.stdout != v.stdout {
		t.Fatalf("verify --json is not stable:\n%s\n%s", v.stdout, again.stdout)
	}

	s := migrateRun(t, cfg, MigrateOptions{Command: "sync"})
	if s.code != ExitDiffers {
		t.Fatalf("sync with a secret conflict and a secondary-only key: exit %d, want 1\n%s", s.code, s.stdout)
	}
	if got, _ := sec.store.Get("AKSEED000000"); !got.Active || got.Description != "seeded 0" {
		t.Fatalf("status and description not brought to the primary's: %+v", got)
	}
	if got, _ := sec.store.Get("AKSEED000001"); got.SK != k2.SK {
		t.Fatal("sync overwrote a secret that differs on the secondary")
	}
	if _, ok := sec.store.Get("AKONLYSECONDARY"); !ok {
		t.Fatal("sync without --prune deleted a key")
	}
	pruned := migrateRun(t, cfg, MigrateOptions{Command: "sync", Prune: true})
	if _, ok := sec.store.Get("AKONLYSECONDARY"); ok || summary(pruned.stdout, "pruned") != 1 {
		t.Fatalf("sync --prune kept the secondary-only key\n%s", pruned.stdout)
	}
	last := decodeReport(t, migrateRun(t, cfg, MigrateOptions{Command: "verify", JSON: true}))
	if len(last.Divergences) != 1 || last.Divergences[0].Kind != "secret" {
		t.Fatalf("after sync --prune: %+v; want only the secret conflict", last)
	}
	noSecretIn(t, "migrate", keys, v, s, pruned)
	if strings.Contains(v.stdout+s.stdout, k2.SK) {
		t.Fatal("the secondary's secret was printed")
	}
}

// TestMigrateUnmappedUsers: with a user map, users it does not list are not
// read and are reported.
func TestMigrateUnmappedUsers(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	seedKeys(c.store, []string{"u-alice"}, 1)
	m := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(m, []byte("- {primary: u-alice, secondary: u-alice, project: p-alice}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := migrateConfig(t, c, translate.SideIBM, sec, "CREDBRIDGE_MIGRATION_USER_MAP_FILE="+m)
	s := migrateRun(t, cfg, MigrateOptions{Command: "sync"})
	if got, ok := sec.store.Get("AKSEED000000"); s.code != ExitOK || !ok || got.ProjectID != "p-alice" {
		t.Fatalf("sync with a map: exit %d, key %+v; want it created in the map's project\n%s%s", s.code, got, s.stdout, s.stderr)
	}
	// the map lists only alice; the identity service is not asked, so no
	// user is unmapped: list one that is not in the map through the plan.
	if err := os.WriteFile(m, []byte("- {primary: u-alice, secondary: u-alice}\n- {primary: u-bob, secondary: u-bob}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seedKeys(c.store, []string{"u-alice", "u-bob"}, 1)
	cfg2 := migrateConfig(t, c, translate.SideIBM, sec, "CREDBRIDGE_MIGRATION_USER_MAP_FILE="+m)
	if v := migrateRun(t, cfg2, MigrateOptions{Command: "verify"}); v.code != ExitDiffers || !strings.Contains(v.stdout, "AKSEED000100") {
		t.Fatalf("verify: exit %d\n%s", v.code, v.stdout)
	}
}

// TestMigrateCannotRun: exit 2 when the commands cannot say anything true.
func TestMigrateCannotRun(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	cases := []struct {
		name string
		env  []string
		o    MigrateOptions
		want string
	}{
		{"secondary unreachable", []string{"CREDBRIDGE_MIGRATION_SECONDARY_URL=http://127.0.0.1:1"}, MigrateOptions{Command: "verify", JSON: true}, "secondary"},
		{"no journal key", []string{"CREDBRIDGE_MIGRATION_MODE=shadow", "CREDBRIDGE_MIGRATION_JOURNAL_KEY_FILE="}, MigrateOptions{Command: "plan"}, "migration.journal_key_file"},
		{"passthrough primary without a token file", []string{"CREDBRIDGE_UPSTREAM_AUTH_MODE=passthrough", "CREDBRIDGE_UPSTREAM_AUTH_TOKEN_FILE="}, MigrateOptions{Command: "verify"}, "--primary-token-file"},
		{"sync toward an oscred secondary", []string{"CREDBRIDGE_MIGRATION_MODE=shadow", "CREDBRIDGE_MIGRATION_SECONDARY_DIALECT=oscred"}, MigrateOptions{Command: "sync"}, "migration.secondary.dialect"},
		{"token without an admin role", []string{"CREDBRIDGE_UPSTREAM_AUTH_TOKEN_FILE=" + secretFile(t, "demo-alice-token")}, MigrateOptions{Command: "verify"}, "administrator"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := migrateConfig(t, c, translate.SideIBM, sec, tc.env...)
			o := migrateRun(t, cfg, tc.o)
			if o.code != ExitCannotRun || !strings.Contains(o.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %q", o.code, o.stderr, tc.want)
			}
		})
	}
	t.Run("passthrough primary with a token file", func(t *testing.T) {
		cfg := migrateConfig(t, c, translate.SideIBM, sec, "CREDBRIDGE_UPSTREAM_AUTH_MODE=passthrough", "CREDBRIDGE_UPSTREAM_AUTH_TOKEN_FILE=")
		tok := secretFile(t, "demo-admin-token")
		if o := migrateRun(t, cfg, MigrateOptions{Command: "verify", PrimaryTokenFile: tok}); o.code != ExitOK {
			t.Fatalf("exit %d: %s", o.code, o.stderr)
		}
	})
}

// flakySecondary wraps the secondary: fail answers creates with 500 while
// set, every throttle-th request gets 429, and inFlight/maxInFlight count
// the calls at once.
type flakySecondary struct {
	fail                 atomic.Bool
	throttle             int64
	n, inFlight, maxSeen atomic.Int64
	onCreate             func()
}

func (f *flakySecondary) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := f.inFlight.Add(1)
		defer f.inFlight.Add(-1)
		for m := f.maxSeen.Load(); cur > m && !f.maxSeen.CompareAndSwap(m, cur); m = f.maxSeen.Load() {
		}
		time.Sleep(time.Millisecond) // long enough for calls to overlap
		if f.throttle > 0 && f.n.Add(1)%f.throttle == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		if r.Method == http.MethodPost {
			if f.fail.Load() {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			if f.onCreate != nil {
				f.onCreate()
			}
		}
		h.ServeHTTP(w, r)
	})
}

// TestMigrateSyncResumes: a sync stopped part way (cancelled, as SIGINT does)
// or whose creates keep failing leaves its writes journaled; the next run
// applies them first and finishes the job, each key created once.
func TestMigrateSyncResumes(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	f := &flakySecondary{}
	sec.setHandler(f.wrap(sec.handler()))
	keys := seedKeys(c.store, demoUserIDs, 2)
	cfg := migrateConfig(t, c, translate.SideIBM, sec)

	ctx, cancel := context.WithCancel(context.Background())
	var created atomic.Int64
	f.onCreate = func() {
		if created.Add(1) == 3 {
			cancel()
		}
	}
	first := migrateRunCtx(t, ctx, cfg, MigrateOptions{Command: "sync"})
	if first.code == ExitOK {
		t.Fatalf("a cancelled sync exited 0\n%s", first.stdout)
	}
	f.onCreate = nil
	raw, err := os.ReadFile(cfg.Migration.SyncJournalPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if bytes.Contains(raw, []byte(k.SK)) {
			t.Fatalf("the sync journal holds the secret of %s in clear", k.AK)
		}
	}
	f.fail.Store(true)
	second := migrateRun(t, cfg, MigrateOptions{Command: "sync"})
	if second.code != ExitDiffers || summary(second.stdout, "still journaled") == 0 || !strings.Contains(second.stdout, "secondary answered 500") {
		t.Fatalf("sync with creates failing: exit %d\n%s%s", second.code, second.stdout, second.stderr)
	}
	f.fail.Store(false)
	posts := sec.posts.Load()
	third := migrateRun(t, cfg, MigrateOptions{Command: "sync"})
	if third.code != ExitOK || !strings.Contains(third.stderr, "interrupted run") {
		t.Fatalf("the sync after: exit %d\n%s%s", third.code, third.stdout, third.stderr)
	}
	if n := len(sec.store.Keys(nil)); n != len(keys) {
		t.Fatalf("%d keys on the secondary, want %d", n, len(keys))
	}
	if v := migrateRun(t, cfg, MigrateOptions{Command: "verify"}); v.code != ExitOK {
		t.Fatalf("verify after the resumed sync: exit %d\n%s", v.code, v.stdout)
	}
	if extra := sec.posts.Load() - posts; extra > int64(len(keys)) {
		t.Fatalf("the resumed sync sent %d creates for %d keys", extra, len(keys))
	}
}

// TestMigrateConcurrencyAndBackoff: --concurrency bounds the calls in flight
// toward the secondary, and 429 answers are waited out, not failures.
func TestMigrateConcurrencyAndBackoff(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	f := &flakySecondary{throttle: 4}
	sec.setHandler(f.wrap(sec.handler()))
	keys := seedKeys(c.store, demoUserIDs, 2)
	cfg := migrateConfig(t, c, translate.SideIBM, sec)
	s := migrateRun(t, cfg, MigrateOptions{Command: "sync", Concurrency: 2})
	if s.code != ExitOK || len(sec.store.Keys(nil)) != len(keys) {
		t.Fatalf("sync through 429s: exit %d\n%s%s", s.code, s.stdout, s.stderr)
	}
	if m := f.maxSeen.Load(); m > 2 {
		t.Fatalf("%d calls in flight toward the secondary with --concurrency 2", m)
	}
	if summary(s.stdout, "throttled") == 0 {
		t.Fatalf("the summary counts no throttled answer:\n%s", s.stdout)
	}
}

// TestReloadSwapsSides: the cutover's swap. A write journaled for the old
// secondary while it was down is still applied there after a reload made it
// the primary — not to the new secondary — and writes after the swap are
// mirrored to the old primary.
func TestReloadSwapsSides(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	env := migrationEnv(t, sec, "mirror", fileJournal(t))
	rt, _ := startBridge(t, c, append(env, "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR=ibm")...)
	base := "http://" + rt.Addr()
	sec.down()
	ak, sk := createKey(t, base, "u-alice", "before the swap")
	eventually(t, "the write journaled", func() bool { return migrationStatus(t, rt).Journal.Pending == 1 })

	swapped := append([]string{"CREDBRIDGE_LISTEN=127.0.0.1:0", "CREDBRIDGE_ADMIN_LISTEN=127.0.0.1:0", "CREDBRIDGE_IDENTITY_URL=" + c.idURL,
		"CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR=keystone", "CREDBRIDGE_UPSTREAM_URL=" + sec.url()}, env...)
	swapped = append(swapped, "CREDBRIDGE_MIGRATION_SECONDARY_FLAVOR=ibm", "CREDBRIDGE_MIGRATION_SECONDARY_URL="+c.upURL)
	cfg, err := config.Load("", swapped)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if st := migrationStatus(t, rt); !strings.Contains(st.Raw, `"primary":"ec2blob-keystone `) || st.Secondary.Dialect != "ec2blob-ibm" {
		t.Fatalf("/migration after the swap: %s", st.Raw)
	}
	sec.up()
	eventually(t, "the old entry applied to the side it was journaled for", func() bool {
		k, ok := sec.store.Get(ak)
		return ok && k.SK == sk
	})
	eventually(t, "the journal drained", func() bool { return migrationStatus(t, rt).Journal.Pending == 0 })
	ak2, sk2 := createKey(t, base, "u-bob", "after the swap")
	if _, ok := sec.store.Get(ak2); !ok {
		t.Fatal("a create after the swap did not go to the new primary")
	}
	eventually(t, "the new write mirrored to the old primary", func() bool {
		k, ok := c.store.Get(ak2)
		return ok && k.SK == sk2
	})
}

// TestMigrateStatus: status asks the running bridge, and reads the journals
// themselves when none answers.
func TestMigrateStatus(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	journal := fileJournal(t)
	env := append(migrationEnv(t, sec, "mirror", journal), "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR=ibm")
	rt, _ := startBridge(t, c, env...)
	sec.down()
	createKey(t, "http://"+rt.Addr(), "u-alice", "pending")
	cfg, err := config.Load("", append([]string{"CREDBRIDGE_ADMIN_LISTEN=" + rt.AdminAddr()}, env...))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "status naming the pending write", func() bool {
		o := migrateRun(t, cfg, MigrateOptions{Command: "status"})
		return o.code == 0 && strings.Contains(o.stdout, "serving") && strings.Contains(o.stdout, "file: 1 pending")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	o := migrateRun(t, cfg, MigrateOptions{Command: "status"})
	if o.code != 0 || !strings.Contains(o.stdout, "reading the journal") || !strings.Contains(o.stdout, "journal\t1 pending") {
		t.Fatalf("status with no bridge: exit %d\n%s%s", o.code, o.stdout, o.stderr)
	}
}

// TestMigrateHostileSecondary: what a cloud answers is hostile too. An access
// key holding a terminal escape and a path is printed quoted, and sync
// --prune never turns it into a request path.
func TestMigrateHostileSecondary(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	evil := "AK\x1b]0;owned\x07/../../u-admin"
	sec.store.Put(emulator.Key{AK: evil, SK: "evil-secret-xxxxxxxxxxxxxxxxxxxxxxxxxxxx", UserID: "u-bob", ProjectID: "p-demo", Active: true})
	sec.store.Put(emulator.Key{AK: "AKVICTIM", SK: "victim-secret-xxxxxxxxxxxxxxxxxxxxxxxxx", UserID: "u-admin", ProjectID: "p-demo", Active: true})
	c.store.Put(emulator.Key{AK: "AKVICTIM", SK: "victim-secret-xxxxxxxxxxxxxxxxxxxxxxxxx", UserID: "u-admin", ProjectID: "p-demo", Active: true, StatusSet: true})
	cfg := migrateConfig(t, c, translate.SideIBM, sec)
	v := migrateRun(t, cfg, MigrateOptions{Command: "verify"})
	if strings.ContainsRune(v.stdout, '\x1b') || !strings.Contains(v.stdout, `"AK\x1b]0;owned\a/../../u-admin"`) {
		t.Fatalf("verify printed the access key unquoted:\n%q", v.stdout)
	}
	s := migrateRun(t, cfg, MigrateOptions{Command: "sync", Prune: true})
	if strings.ContainsRune(s.stdout+s.stderr, '\x1b') {
		t.Fatalf("sync printed a raw escape:\n%q", s.stdout+s.stderr)
	}
	if _, ok := sec.store.Get("AKVICTIM"); !ok {
		t.Fatal("a hostile access key made sync delete another key")
	}
	if s.code != ExitDiffers {
		t.Fatalf("sync --prune of a key it must not touch: exit %d, want 1\n%s", s.code, s.stdout)
	}
}

// TestMigrateUnmappedHolder: with a user map, a user it leaves out who holds
// keys is reported, and their key is never pruned from the secondary where it
// sits under a mapped user.
func TestMigrateUnmappedHolder(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	bob := emulator.Key{AK: "AKBOBUNMAPPED", SK: "bob-unmapped-secret-xxxxxxxxxxxxxxxxxxxx", UserID: "u-bob", ProjectID: "p-demo", Active: true, StatusSet: true}
	c.store.Put(bob)
	onSec := bob
	onSec.UserID = "u-alice"
	sec.store.Put(onSec)
	m := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(m, []byte("- {primary: u-alice, secondary: u-alice}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := migrateConfig(t, c, translate.SideIBM, sec, "CREDBRIDGE_MIGRATION_USER_MAP_FILE="+m)
	r := decodeReport(t, migrateRun(t, cfg, MigrateOptions{Command: "verify", JSON: true}))
	kinds := ""
	for _, d := range r.Divergences {
		kinds += d.Kind + ":" + d.Owner + " "
	}
	if !strings.Contains(kinds, "unmapped_user:u-bob") || strings.Contains(kinds, "missing_on_primary") {
		t.Fatalf("verify with bob unmapped: %s", kinds)
	}
	if s := migrateRun(t, cfg, MigrateOptions{Command: "sync", Prune: true}); s.code != ExitDiffers {
		t.Fatalf("sync --prune with an unmapped holder: exit %d, want 1\n%s", s.code, s.stdout)
	}
	if _, ok := sec.store.Get(bob.AK); !ok {
		t.Fatal("sync --prune deleted a key the primary holds for an unmapped user")
	}
}

// TestReloadUnderWritesLosesNothing: clients keep creating keys while the
// migration section is reloaded again and again (each reload builds a new
// mirror over the same journal, the old one stopping): every create a client
// was told succeeded reaches the secondary with its secret.
func TestReloadUnderWritesLosesNothing(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	env := append(migrationEnv(t, sec, "mirror", fileJournal(t)), "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR=ibm")
	rt, _ := startBridge(t, c, env...)
	base := "http://" + rt.Addr()
	users := []string{"u-alice", "u-bob", "u-te", "u-admin", "u-svc"}
	stop := make(chan struct{})
	var mu sync.Mutex
	made := map[string]string{}
	var wg sync.WaitGroup
	var writes atomic.Int64
	for _, u := range users {
		wg.Add(1)
		go func() { // create and delete in turn until the reloads end; keep the last key
			defer wg.Done()
			for {
				ak, sk := createKey(t, base, u, "under reload")
				writes.Add(1)
				select {
				case <-stop:
					mu.Lock()
					made[ak] = sk
					mu.Unlock()
					return
				default:
				}
				if r := bt.Do(t, base, http.MethodDelete, oscredPath+"/"+ak, bt.Admin, "", ""); r.Status != http.StatusNoContent {
					t.Errorf("delete: %d", r.Status)
					return
				}
			}
		}()
	}
	base0 := append([]string{"CREDBRIDGE_LISTEN=127.0.0.1:0", "CREDBRIDGE_ADMIN_LISTEN=127.0.0.1:0",
		"CREDBRIDGE_UPSTREAM_URL=" + c.upURL, "CREDBRIDGE_IDENTITY_URL=" + c.idURL}, env...)
	for i := 0; i < 20; i++ {
		cfg, err := config.Load("", append(base0, fmt.Sprintf("CREDBRIDGE_MIGRATION_SAMPLE=0.%d", i%9+1)))
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	eventually(t, "the journal drained", func() bool { return migrationStatus(t, rt).Journal.Pending == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(made) != len(users) || writes.Load() < 4*int64(len(users)) {
		t.Fatalf("%d keys kept, %d creates during the reloads: too few to prove anything", len(made), writes.Load())
	}
	for ak, sk := range made {
		if k, ok := sec.store.Get(ak); !ok || k.SK != sk {
			t.Fatalf("%s, acknowledged during the reloads, is not on the secondary with its secret (found %v)", ak, ok)
		}
	}
	for _, k := range sec.store.Keys(nil) {
		if _, kept := made[k.AK]; !kept {
			t.Fatalf("%s was deleted on the primary but is on the secondary", k.AK)
		}
	}
}
