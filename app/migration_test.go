package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/internal/testing/redistest"
	"github.com/credbridge/credbridge/translate"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

const (
	oscredJSON = "application/json;charset=utf8"
	journalKey = "0123456789abcdef0123456789abcdef-test-journal-key"
)

// secondaryCloud is a Keystone-flavor ec2blob reference server sharing the
// primary's users, on a fixed loopback address so it can go down and come back.
type secondaryCloud struct {
	t     *testing.T
	store *emulator.Store
	hmu   sync.Mutex
	h     http.Handler // what answers: setHandler swaps it, live
	addr  string
	posts atomic.Int64 // creates received
	mu    sync.Mutex
	srv   *http.Server
}

func newSecondaryCloud(t *testing.T, dir *emulator.Directory, keystone bool) *secondaryCloud {
	b := emulator.NewEC2Blob(dir, keystone)
	s := &secondaryCloud{t: t, store: b.Store}
	inner := b.Handler()
	s.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			s.posts.Add(1)
		}
		inner.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.down)
	return s
}

func (s *secondaryCloud) url() string { return "http://" + s.addr }

// handler is what answers now; setHandler replaces it for the next request
// (tests wrap the reference server to make it fail, lie or hang).
func (s *secondaryCloud) handler() http.Handler {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return s.h
}

func (s *secondaryCloud) setHandler(h http.Handler) {
	s.hmu.Lock()
	s.h = h
	s.hmu.Unlock()
}

func (s *secondaryCloud) serve(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.handler().ServeHTTP(w, r) })}
	s.srv = srv
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener and every connection: calls are refused.
func (s *secondaryCloud) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

// up listens again on the same address (nothing when it is up).
func (s *secondaryCloud) up() {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return
	}
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(ln)
}

// migrationEnv configures mode toward sec with the admin-capable service token.
func migrationEnv(t *testing.T, sec *secondaryCloud, mode, journal string) []string {
	return []string{
		"CREDBRIDGE_MIGRATION_MODE=" + mode,
		"CREDBRIDGE_MIGRATION_SECONDARY_DIALECT=ec2blob",
		"CREDBRIDGE_MIGRATION_SECONDARY_FLAVOR=keystone",
		"CREDBRIDGE_MIGRATION_SECONDARY_URL=" + sec.url(),
		"CREDBRIDGE_MIGRATION_SECONDARY_TIMEOUT=5s",
		"CREDBRIDGE_MIGRATION_SECONDARY_AUTH_TOKEN_FILE=" + secretFile(t, "demo-service-token"),
		"CREDBRIDGE_MIGRATION_JOURNAL=" + journal,
		"CREDBRIDGE_MIGRATION_JOURNAL_KEY_FILE=" + secretFile(t, journalKey),
	}
}

// redisEnv points the cache (and a redis journal) at r, entries signed.
func redisEnv(t *testing.T, r *redistest.Server) []string {
	return []string{"CREDBRIDGE_CACHE_REDIS_URL=" + r.URL(), "CREDBRIDGE_CACHE_HMAC_KEY_FILE=" + secretFile(t, "an-hmac-key-of-decent-length-0123456789")}
}

func fileJournal(t *testing.T) string { return "file:" + filepath.Join(t.TempDir(), "journal.db") }

// eventually polls cond for up to 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyShowing(t, what, func() (bool, string) { return cond(), "" })
}

// eventuallyShowing is eventually whose timeout prints the state cond saw last.
func eventuallyShowing(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last seen: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createKey creates a key for user through the bridge as the admin (oscred client).
func createKey(t *testing.T, base, user, desc string) (ak, sk string) {
	t.Helper()
	r := bt.Do(t, base, http.MethodPost, oscredPath, bt.Admin, oscredJSON,
		fmt.Sprintf(`{"credential":{"user_id":%q,"description":%q}}`, user, desc))
	if r.Status != http.StatusCreated {
		t.Fatalf("create for %s: %d %s", user, r.Status, r.Body)
	}
	c := r.Cred()
	ak, _ = c["access"].(string)
	sk, _ = c["secret"].(string)
	if ak == "" || sk == "" {
		t.Fatalf("create answer without a key pair: %s", r.Body)
	}
	return ak, sk
}

func TestMirrorCreateUpdateDelete(t *testing.T) {
	c := newCloud(t, translate.SideOscred)
	sec := newSecondaryCloud(t, c.dir, true)
	rt, _ := startBridge(t, c, migrationEnv(t, sec, "mirror", fileJournal(t))...)
	base := "http://" + rt.Addr()

	ak, sk := createKey(t, base, "u-alice", "ci key")
	eventually(t, "the key on the secondary", func() bool { _, ok := sec.store.Get(ak); return ok })
	k, _ := sec.store.Get(ak)
	if k.SK != sk || k.UserID != "u-alice" || !k.Active || k.Description != "ci key" || k.ProjectID != "p-demo" {
		t.Fatalf("secondary key = %+v; want the same pair, owner u-alice, active, the description, the caller's project", k)
	}

	r := bt.Do(t, base, http.MethodPut, oscredPath+"/"+ak, bt.Alice, oscredJSON, `{"credential":{"status":"inactive","description":"rotated"}}`)
	if r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	eventually(t, "the update on the secondary", func() bool {
		k, _ := sec.store.Get(ak)
		return !k.Active && k.Description == "rotated"
	})
	if k, _ := sec.store.Get(ak); k.SK != sk {
		t.Fatal("the update lost the secret on the secondary")
	}

	if r := bt.Do(t, base, http.MethodDelete, oscredPath+"/"+ak, bt.Alice, "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	eventually(t, "the delete on the secondary", func() bool { _, ok := sec.store.Get(ak); return !ok })

	st := migrationStatus(t, rt)
	if st.Journal == nil || st.Journal.Kind != "file" || st.Mode != "mirror" {
		t.Fatalf("/migration = %+v", st)
	}
}

type statusView struct {
	Mode      string `json:"mode"`
	Secondary struct {
		Dialect string `json:"dialect"`
	} `json:"secondary"`
	Journal *struct {
		Kind    string `json:"kind"`
		Pending int64  `json:"pending"`
	} `json:"journal"`
	Dropped     int64             `json:"shadow_dropped"`
	Divergences []json.RawMessage `json:"divergences"`
	Raw         string            `json:"-"`
}

func migrationStatus(t *testing.T, rt *Runtime) statusView {
	t.Helper()
	r := bt.Do(t, "http://"+rt.AdminAddr(), http.MethodGet, "/migration", "", "", "")
	if r.Status != http.StatusOK {
		t.Fatalf("/migration: %d %s", r.Status, r.Body)
	}
	var s statusView
	if err := json.Unmarshal(r.Body, &s); err != nil {
		t.Fatal(err)
	}
	s.Raw = string(r.Body)
	return s
}

func readyz(t *testing.T, rt *Runtime) string {
	return string(bt.Do(t, "http://"+rt.AdminAddr(), http.MethodGet, "/readyz", "", "", "").Body)
}

// TestMirrorSecondaryDown: while the secondary refuses connections, clients
// get their answers as fast as ever and /readyz names migration degraded;
// once it is back every write arrives, in order per key.
func TestMirrorSecondaryDown(t *testing.T) {
	c := newCloud(t, translate.SideOscred)
	sec := newSecondaryCloud(t, c.dir, true)
	rt, _ := startBridge(t, c, append(migrationEnv(t, sec, "mirror", fileJournal(t)), "CREDBRIDGE_MIGRATION_MAX_LAG=1s")...)
	base := "http://" + rt.Addr()
	sec.down()

	want := map[string]string{}
	var slowest time.Duration
	for _, u := range []string{"u-alice", "u-bob", "u-admin", "u-te"} {
		for i := 0; i < 2; i++ {
			start := time.Now()
			ak, sk := createKey(t, base, u, "outage")
			slowest = max(slowest, time.Since(start))
			want[ak] = sk
		}
	}
	// A key created and deleted during the outage must not appear afterwards.
	var gone string
	for ak := range want {
		if r := bt.Do(t, base, http.MethodDelete, oscredPath+"/"+ak, bt.Admin, "", ""); r.Status != http.StatusNoContent {
			t.Fatalf("delete: %d", r.Status)
		}
		gone = ak
		delete(want, ak)
		break
	}
	// The secondary's timeout is 5 s: a client that waited for it would show it.
	if slowest > 2*time.Second {
		t.Fatalf("a create took %s with the secondary down", slowest)
	}
	eventually(t, "readyz naming migration", func() bool { return strings.Contains(readyz(t, rt), "migration: secondary unreachable") })
	eventually(t, "readyz naming the lag past max_lag", func() bool { return strings.Contains(readyz(t, rt), "journal lags") })
	if n := migrationStatus(t, rt).Journal.Pending; n == 0 {
		t.Fatal("/migration shows nothing pending during the outage")
	}
	if _, ok := sec.store.Get(gone); ok {
		t.Fatal("a write reached the secondary while it was down")
	}

	sec.up()
	eventually(t, "every key on the secondary", func() bool {
		for ak, sk := range want {
			if k, ok := sec.store.Get(ak); !ok || k.SK != sk {
				return false
			}
		}
		return true
	})
	eventually(t, "the journal drained", func() bool { return migrationStatus(t, rt).Journal.Pending == 0 })
	if _, ok := sec.store.Get(gone); ok {
		t.Fatal("a key deleted during the outage exists on the secondary")
	}
	eventually(t, "readyz ready again", func() bool { return readyz(t, rt) == "ready\n" })
}

// TestMirrorTwoBridgesShareRedisJournal: two replicas on one Redis Stream;
// each write is applied once, whichever bridge took it.
func TestMirrorTwoBridgesShareRedisJournal(t *testing.T) {
	r := redistest.Start(t)
	c := newCloud(t, translate.SideOscred)
	sec := newSecondaryCloud(t, c.dir, true)
	env := append(migrationEnv(t, sec, "mirror", "redis"), redisEnv(t, r)...)
	a, _ := startBridge(t, c, env...)
	b, _ := startBridge(t, c, env...)
	want := map[string]string{}
	for i, u := range []string{"u-alice", "u-bob", "u-admin", "u-te", "u-alice", "u-bob", "u-admin", "u-te"} {
		rt := []*Runtime{a, b}[i%2]
		ak, sk := createKey(t, "http://"+rt.Addr(), u, "shared")
		want[ak] = sk
		// the other replica updates it: per-key order across replicas
		other := []*Runtime{b, a}[i%2]
		if resp := bt.Do(t, "http://"+other.Addr(), http.MethodPut, oscredPath+"/"+ak, bt.Admin, oscredJSON, `{"credential":{"status":"inactive"}}`); resp.Status != http.StatusOK {
			t.Fatalf("update: %d %s", resp.Status, resp.Body)
		}
	}
	eventually(t, "every key on the secondary, inactive", func() bool {
		for ak, sk := range want {
			if k, ok := sec.store.Get(ak); !ok || k.SK != sk || k.Active {
				return false
			}
		}
		return true
	})
	eventually(t, "the stream drained", func() bool {
		n, err := r.Do("XLEN", "credbridge:migration:journal")
		return err == nil && n == "0"
	})
	if n := sec.posts.Load(); n != int64(len(want)) {
		t.Fatalf("%d creates reached the secondary for %d keys: an entry was applied twice", n, len(want))
	}
	for _, rt := range []*Runtime{a, b} {
		if st := migrationStatus(t, rt); st.Journal.Kind != "redis" {
			t.Fatalf("/migration journal = %+v", st.Journal)
		}
	}
}

// TestMirrorNothingLeaks: with writes pending and then applied, neither the
// journal's bytes (bbolt file, Redis stream) nor logs, metrics, spans or
// /migration hold a secret or a token; the apply span links to the request.
func TestMirrorNothingLeaks(t *testing.T) {
	for _, kind := range []string{"file", "redis"} {
		t.Run(kind, func(t *testing.T) {
			c := newCloud(t, translate.SideOscred)
			sec := newSecondaryCloud(t, c.dir, true)
			journal, path := "redis", ""
			var r *redistest.Server
			env := []string{}
			if kind == "file" {
				path = filepath.Join(t.TempDir(), "journal.db")
				journal = "file:" + path
			} else {
				r = redistest.Start(t)
				env = append(env, redisEnv(t, r)...)
			}
			tel, exp := traced(t)
			rt, logs := startBridgeWith(t, c, tel, append(migrationEnv(t, sec, "mirror", journal), env...)...)
			base := "http://" + rt.Addr()
			sec.down()
			resp := bt.Do(t, base, http.MethodPost, oscredPath, bt.Admin, oscredJSON, `{"credential":{"user_id":"u-alice"}}`, "traceparent", traceparent)
			if resp.Status != http.StatusCreated {
				t.Fatalf("%d %s", resp.Status, resp.Body)
			}
			ak, sk := resp.Cred()["access"].(string), resp.Cred()["secret"].(string)
			var journalBytes string
			if kind == "file" {
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				journalBytes = string(raw)
			} else {
				out, err := r.Do("XRANGE", "credbridge:migration:journal", "-", "+")
				if err != nil {
					t.Fatal(err)
				}
				journalBytes = out + strings.Join(r.Keys(), "\n")
			}
			if !strings.Contains(journalBytes, ak) {
				t.Fatalf("the entry is not in the journal (%d bytes): nothing judged", len(journalBytes))
			}
			sec.up()
			eventually(t, "the key on the secondary", func() bool { k, ok := sec.store.Get(ak); return ok && k.SK == sk })
			eventually(t, "the apply span", func() bool { return applySpan(exp) != nil })
			sp := applySpan(exp)
			if len(sp.Links) != 1 || sp.Links[0].SpanContext.TraceID().String() != clientTrace {
				t.Fatalf("apply span links = %+v; want the client's trace %s", sp.Links, clientTrace)
			}
			metrics := string(bt.Do(t, "http://"+rt.AdminAddr(), http.MethodGet, "/metrics", "", "", "").Body)
			for _, name := range []string{"credbridge_migration_applied_total", "credbridge_migration_journal_pending", "credbridge_migration_journal_oldest_seconds"} {
				if !strings.Contains(metrics, name) {
					t.Fatalf("metric %s missing", name)
				}
			}
			var spans []string
			for _, s := range exp.GetSpans() {
				spans = append(spans, fmt.Sprintf("%s %v %v %v", s.Name, s.Attributes, s.Status, s.Events))
			}
			all := map[string]string{"journal": journalBytes, "logs": logs.String(), "metrics": metrics,
				"spans": strings.Join(spans, "\n"), "/migration": migrationStatus(t, rt).Raw}
			for where, text := range all {
				for _, s := range []string{sk, bt.Admin, "demo-service-token"} {
					if strings.Contains(text, s) {
						t.Fatalf("%q found in %s", s, where)
					}
				}
			}
		})
	}
}

func applySpan(exp *tracetest.InMemoryExporter) *tracetest.SpanStub {
	for _, s := range exp.GetSpans() {
		if s.Name == "migration apply create" && attr(s, "migration.outcome") == "done" {
			return &s
		}
	}
	return nil
}

// TestShadowDivergences: in shadow mode reads are compared in the neutral
// model, and each kind of difference the spec lists is counted and shown.
func TestShadowDivergences(t *testing.T) {
	c := newCloud(t, translate.SideIBM) // IBM discloses secrets: fingerprints compare
	sec := newSecondaryCloud(t, c.dir, true)
	users := secretFile(t, "- {primary: u-alice, secondary: u-alice}\n- {primary: u-bob, secondary: u-bob}\n- {primary: u-admin, secondary: u-admin}\n")
	env := append(migrationEnv(t, sec, "shadow", "file:unused"), "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR=ibm",
		"CREDBRIDGE_MIGRATION_USER_MAP_FILE="+users)
	rt, logs := startBridge(t, c, env...)
	base := "http://" + rt.Addr()
	slowGet := translate.BasePath(translate.SideKeystone) + "/" + translate.SideKeystone.ID("AKBOBSAME")
	inner := sec.handler()
	sec.setHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == slowGet {
			time.Sleep(300 * time.Millisecond) // the comparer asking it finishes last
		}
		inner.ServeHTTP(w, r)
	}))
	both := func(ak, user, secUser, sk, secSK, desc, secDesc string, active, secActive bool) {
		now := time.Now()
		c.store.Put(emulator.Key{AK: ak, SK: sk, UserID: user, Active: active, StatusSet: true, Description: desc, HasDesc: desc != "", Created: now})
		if secUser != "" {
			sec.store.Put(emulator.Key{AK: ak, SK: secSK, UserID: secUser, Active: secActive, StatusSet: true, Description: secDesc, HasDesc: secDesc != "", Created: now})
		}
	}
	both("AKONLYPRIMARY", "u-alice", "", "s1", "", "", "", true, true)
	sec.store.Put(emulator.Key{AK: "AKONLYSECONDARY", SK: "s2", UserID: "u-alice", Active: true, StatusSet: true, Created: time.Now()})
	both("AKSTATUS", "u-alice", "u-alice", "s3", "s3", "", "", true, false)
	both("AKDESC", "u-alice", "u-alice", "s4", "s4", "old", "new", true, true)
	both("AKSECRET", "u-alice", "u-alice", "primary-secret-5", "other-secret-5", "", "", true, true)
	both("AKOWNER", "u-bob", "u-alice", "s6", "s6", "", "", true, true)
	both("AKBOBSAME", "u-bob", "u-bob", "s7", "s7", "same", "same", true, true)
	both("AKTE", "u-te", "u-te", "s8", "s8", "", "", true, true)

	get := func(path string) {
		if r := bt.Do(t, base, http.MethodGet, path, bt.Admin, "", ""); r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		}
	}
	get("/credentials?user_id=u-alice")
	get("/credentials/AKOWNER")
	get("/credentials/AKBOBSAME")
	get("/credentials?user_id=u-te")
	kinds := func() map[string]int {
		out := map[string]int{}
		for _, raw := range migrationStatus(t, rt).Divergences {
			var d struct{ Kind string }
			_ = json.Unmarshal(raw, &d)
			out[d.Kind]++
		}
		return out
	}
	metrics := func() string {
		return string(bt.Do(t, "http://"+rt.AdminAddr(), http.MethodGet, "/metrics", "", "", "").Body)
	}
	const matched = `credbridge_migration_compared_total{op="get",result="match"} 1`
	want := []string{"missing_on_secondary", "missing_on_primary", "status", "description", "secret", "owner", "unmapped_user"}
	// Two comparers run side by side: AKBOBSAME's match leaves no divergence
	// and may still be asking the secondary after the u-te list (answered
	// without asking) is done, so its metric is waited for too; taking the
	// secondary down under it would make it a second secondary_error.
	eventuallyShowing(t, "every divergence kind and the match", func() (bool, string) {
		k, m := kinds(), metrics()
		state := fmt.Sprintf("%v\n%s\n%s", k, grepLines(m, "credbridge_migration"), migrationStatus(t, rt).Raw)
		for _, w := range want {
			if k[w] == 0 {
				return false, state
			}
		}
		return strings.Contains(m, matched), state
	})
	sec.down()
	get("/credentials/AKSTATUS")
	eventuallyShowing(t, "secondary_error", func() (bool, string) {
		k := kinds()
		return k["secondary_error"] > 0, fmt.Sprint(k)
	})
	if k := kinds(); len(k) != len(want)+1 || k["owner"] != 1 || k["secret"] != 1 || k["secondary_error"] != 1 {
		t.Fatalf("divergences %v: want exactly one of each listed kind", k)
	}
	st := migrationStatus(t, rt)
	m := metrics()
	for _, line := range []string{matched,
		`credbridge_migration_compared_total{op="list",result="diverged"} 1`,
		`credbridge_migration_divergences_total{kind="secondary_error"} 1`} {
		if !strings.Contains(m, line) {
			t.Fatalf("metrics lack %s:\n%s", line, grepLines(m, "migration"))
		}
	}
	for _, s := range []string{"primary-secret-5", "other-secret-5", "s3"} {
		if strings.Contains(st.Raw, `"`+s+`"`) || strings.Contains(logs.String(), s+`"`) {
			t.Fatalf("secret %q shown", s)
		}
	}
	if !strings.Contains(st.Raw, `"kind":"status","access":"AKSTATUS","owner":"u-alice","primary":"active","secondary":"inactive"`) {
		t.Fatalf("/migration does not show the status values: %s", st.Raw)
	}
}

// buildBinary builds the real credbridge into dir/credbridge: the tests that
// run it as users do (SIGKILL, the runbook, the scale benchmark).
func buildBinary(tb testing.TB, dir string) string {
	tb.Helper()
	bin := filepath.Join(dir, "credbridge")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/credbridge").CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestMirrorSurvivesSIGKILL runs the real binary: a create is answered (so it
// is journaled) while the secondary is down, the bridge is killed with
// SIGKILL before it could apply it, and the restarted bridge delivers it.
func TestMirrorSurvivesSIGKILL(t *testing.T) {
	bin := buildBinary(t, t.TempDir())
	c := newCloud(t, translate.SideOscred)
	sec := newSecondaryCloud(t, c.dir, true)
	sec.down()
	listen, admin := freeAddr(t), freeAddr(t)
	cfgText := fmt.Sprintf(`listen: %s
admin_listen: %s
upstream: {dialect: oscred, url: %s}
identity: {url: %s}
migration:
  mode: mirror
  secondary: {dialect: ec2blob, flavor: keystone, url: %s, auth: {mode: token, token_file: %s}}
  journal: "file:%s"
  journal_key_file: %s
`, listen, admin, c.upURL, c.idURL, sec.url(), secretFile(t, "demo-service-token"),
		filepath.Join(t.TempDir(), "journal.db"), secretFile(t, journalKey))
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--config", cfg)
		cmd.Stderr = &bt.SyncBuffer{}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		eventually(t, "the bridge up", func() bool {
			r, err := http.Get("http://" + admin + "/healthz")
			if err == nil {
				r.Body.Close()
			}
			return err == nil && r.StatusCode == http.StatusOK
		})
		return cmd
	}
	first := run()
	ak, sk := createKey(t, "http://"+listen, "u-alice", "before the kill")
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if _, ok := sec.store.Get(ak); ok {
		t.Fatal("the key reached the secondary before the kill: nothing proven")
	}
	sec.up()
	run()
	eventually(t, "the journaled create on the secondary after the restart", func() bool {
		k, ok := sec.store.Get(ak)
		return ok && k.SK == sk && k.Description == "before the kill"
	})
}

// TestDemoMigration: `credbridge demo --migration` shows a key created
// through the bridge appear on the Keystone secondary with the same pair.
func TestDemoMigration(t *testing.T) {
	out := &bt.SyncBuffer{}
	rt, emus, err := Demo(DemoAddrs{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Upstream: "127.0.0.1:0",
		Identity: "127.0.0.1:0", Migration: true, Secondary: "127.0.0.1:0"}, out, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rt.Shutdown(context.Background())
		for _, e := range emus {
			e.Close()
		}
	})
	sec := "http://" + emus[2].Addr
	if !strings.Contains(out.String(), sec+"/v3/credentials?user_id=u-alice") || !strings.Contains(out.String(), "/migration") {
		t.Fatalf("demo lines do not show the secondary:\n%s", out)
	}
	ak, sk := createKey(t, "http://"+rt.Addr(), "u-alice", "mirrored")
	eventually(t, "the demo key on the secondary", func() bool {
		r := bt.Do(t, sec, http.MethodGet, "/v3/credentials?user_id=u-alice", bt.Admin, "", "")
		return strings.Contains(string(r.Body), ak) && strings.Contains(string(r.Body), sk)
	})
}

// TestMirrorEC2BlobPrimaryUpdatesSecret: an ec2blob primary discloses the
// secret, and an update that changes it reaches the secondary.
func TestMirrorEC2BlobPrimaryUpdatesSecret(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	sec := newSecondaryCloud(t, c.dir, true)
	rt, _ := startBridge(t, c, append(migrationEnv(t, sec, "mirror", fileJournal(t)),
		"CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR=ibm")...)
	base := "http://" + rt.Addr()
	r := bt.Do(t, base, http.MethodPost, "/credentials", bt.Admin, "application/json", `{"credential":{"user_id":"u-alice","type":"ec2"}}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	blob := bt.Blob(r.Cred())
	ak, sk := blob["access"].(string), blob["secret"].(string)
	eventually(t, "the IBM key on the secondary", func() bool { k, ok := sec.store.Get(ak); return ok && k.SK == sk })
	r = bt.Do(t, base, http.MethodPatch, "/credentials/"+ak, bt.Alice, "application/json",
		`{"credential":{"type":"ec2","blob":{"access":"`+ak+`","secret":"RotatedSecret0123456789","status":"Inactive"}}}`)
	if r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	eventually(t, "the new secret and status on the secondary", func() bool {
		k, _ := sec.store.Get(ak)
		return k.SK == "RotatedSecret0123456789" && !k.Active
	})
}

// TestMigrationConfigRefused: serve's config load refuses what migration
// cannot run, naming every key at once, including the journal's Redis, which
// only the whole config can judge.
func TestMigrationConfigRefused(t *testing.T) {
	env := []string{"CREDBRIDGE_MIGRATION_MODE=mirror", "CREDBRIDGE_MIGRATION_SECONDARY_DIALECT=oscred",
		"CREDBRIDGE_MIGRATION_SECONDARY_URL=http://127.0.0.1:9003", "CREDBRIDGE_MIGRATION_JOURNAL=redis",
		"CREDBRIDGE_MIGRATION_SECONDARY_AUTH_MODE=passthrough"}
	_, err := config.Load("", env)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, key := range []string{"migration.secondary.dialect: mirror needs an ec2blob", "migration.journal_key_file: required",
		"migration.secondary.auth.mode: passthrough", "migration.journal: redis needs cache.redis_url"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%v\ndoes not name %q", err, key)
		}
	}
}

// TestMirrorJournalDown: with the Redis journal gone a write cannot be
// journaled; the client still gets the primary's answer, the failure is
// counted and /readyz names the journal.
func TestMirrorJournalDown(t *testing.T) {
	r := redistest.Start(t)
	c := newCloud(t, translate.SideOscred)
	sec := newSecondaryCloud(t, c.dir, true)
	rt, logs := startBridge(t, c, append(migrationEnv(t, sec, "mirror", "redis"), redisEnv(t, r)...)...)
	createKey(t, "http://"+rt.Addr(), "u-alice", "first") // the token is cached in process now
	r.Stop()
	createKey(t, "http://"+rt.Addr(), "u-bob", "journal down")
	metrics := string(bt.Do(t, "http://"+rt.AdminAddr(), http.MethodGet, "/metrics", "", "", "").Body)
	if !strings.Contains(metrics, "credbridge_migration_journal_errors_total 1") {
		t.Fatalf("journal error not counted:\n%s", grepLines(metrics, "migration"))
	}
	if !strings.Contains(readyz(t, rt), "journal unavailable") || !strings.Contains(logs.String(), "migration: write not journaled") {
		t.Fatalf("readyz %q; logs lack the journal failure", readyz(t, rt))
	}
}
