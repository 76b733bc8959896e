package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/internal/testing/redistest"
	"github.com/credbridge/credbridge/telemetry"
	"github.com/credbridge/credbridge/translate"
)

// cloud is a reference identity service and backend in one directory.
type cloud struct {
	dir     *emulator.Directory
	idn     *emulator.Identity
	idURL   string
	store   *emulator.Store
	upURL   string
	tokens  []string // X-Auth-Token values the backend received
	parents []string // traceparent values the backend received
	baggage []string // baggage values the backend received
	tokenMu sync.Mutex
}

func newCloud(t *testing.T, up translate.Side) *cloud {
	c := &cloud{dir: emulator.NewDirectory(emulator.DemoUsers())}
	c.idn = emulator.NewIdentity(c.dir)
	idSrv := httptest.NewServer(c.idn.Handler())
	t.Cleanup(idSrv.Close)
	h := c.backend(up)
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.tokenMu.Lock()
		c.tokens = append(c.tokens, r.Header.Get("X-Auth-Token"))
		c.parents = append(c.parents, r.Header.Get("Traceparent"))
		c.baggage = append(c.baggage, r.Header.Get("Baggage"))
		c.tokenMu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(upSrv.Close)
	c.idURL, c.upURL = idSrv.URL, upSrv.URL
	return c
}

func (c *cloud) seenParents() []string {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	return append([]string(nil), c.parents...)
}

func (c *cloud) seenTokens() []string {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	return append([]string(nil), c.tokens...)
}

func secretFile(t *testing.T, v string) string {
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startBridge runs the whole bridge (app.Start) on free loopback ports.
func startBridge(t *testing.T, c *cloud, env ...string) (*Runtime, *bt.SyncBuffer) {
	t.Helper()
	return startBridgeWith(t, c, nil, env...)
}

func startBridgeWith(t *testing.T, c *cloud, tel *telemetry.Telemetry, env ...string) (*Runtime, *bt.SyncBuffer) {
	t.Helper()
	env = append([]string{"CREDBRIDGE_LISTEN=127.0.0.1:0", "CREDBRIDGE_ADMIN_LISTEN=127.0.0.1:0",
		"CREDBRIDGE_UPSTREAM_URL=" + c.upURL, "CREDBRIDGE_IDENTITY_URL=" + c.idURL}, env...)
	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatal(err)
	}
	logs := &bt.SyncBuffer{}
	rt := startRuntime(t, cfg, Options{Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Telemetry: tel, AccessLog: logs})
	return rt, logs
}

// startRuntime starts a bridge for the test and shuts it down after it.
func startRuntime(t *testing.T, cfg *config.Config, o Options) *Runtime {
	t.Helper()
	rt, err := Start(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Shutdown(ctx)
	})
	return rt
}

func TestTwoBridgesShareOneRedis(t *testing.T) {
	r := redistest.Start(t)
	c := newCloud(t, translate.SideOscred)
	key := secretFile(t, "an-hmac-key-of-decent-length-0123456789")
	a, _ := startBridge(t, c, "CREDBRIDGE_CACHE_REDIS_URL="+r.URL(), "CREDBRIDGE_CACHE_HMAC_KEY_FILE="+key)
	b, _ := startBridge(t, c, "CREDBRIDGE_CACHE_REDIS_URL="+r.URL(), "CREDBRIDGE_CACHE_HMAC_KEY_FILE="+key)
	for _, rt := range []*Runtime{a, b, a, b} {
		resp := bt.Do(t, "http://"+rt.Addr(), "GET", "/v3.0/OS-CREDENTIAL/credentials", bt.Alice, "", "")
		if resp.Status != 200 {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
	}
	if n := c.idn.Requests(); n != 1 {
		t.Fatalf("%d identity calls for one token across two bridges", n)
	}
	for _, k := range r.Keys() {
		v, _ := r.Do("GET", k)
		if strings.Contains(k+v, bt.Alice) {
			t.Fatalf("raw token in redis: %s %s", k, v)
		}
	}
	resp := bt.Do(t, "http://"+a.AdminAddr(), "GET", "/readyz", "", "", "")
	if resp.Status != 200 || strings.Contains(string(resp.Body), "degraded") {
		t.Fatalf("readyz: %d %s", resp.Status, resp.Body)
	}
	r.Stop()
	resp = bt.Do(t, "http://"+a.AdminAddr(), "GET", "/readyz", "", "", "")
	if resp.Status != 200 || !strings.Contains(string(resp.Body), "redis") {
		t.Fatalf("readyz with redis down: %d %s", resp.Status, resp.Body)
	}
	if resp := bt.Do(t, "http://"+b.Addr(), "GET", "/credentials", bt.Alice, "", ""); resp.Status != 200 {
		t.Fatalf("cached token with redis down: %d %s", resp.Status, resp.Body)
	}
}

func TestRevocationBoundedByTTL(t *testing.T) {
	r := redistest.Start(t)
	c := newCloud(t, translate.SideOscred)
	tok := c.dir.Issue("u-alice", time.Hour)
	const ttl = 2 * time.Second
	a, _ := startBridge(t, c, "CREDBRIDGE_CACHE_REDIS_URL="+r.URL(), "CREDBRIDGE_CACHE_HMAC_KEY_FILE="+secretFile(t, "an-hmac-key-of-decent-length-0123456789"),
		"CREDBRIDGE_CACHE_TTL=2s", "CREDBRIDGE_CACHE_LOCAL_TTL=500ms")
	get := func() int {
		return bt.Do(t, "http://"+a.Addr(), "GET", "/v3.0/OS-CREDENTIAL/credentials", tok, "", "").Status
	}
	if s := get(); s != 200 {
		t.Fatal(s)
	}
	c.dir.Revoke(tok)
	revoked := time.Now()
	for get() != 401 {
		if time.Since(revoked) > ttl+500*time.Millisecond {
			t.Fatalf("revoked token still accepted after %s (cache.ttl %s)", time.Since(revoked), ttl)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUpstreamCredentialModes(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		c := newCloud(t, translate.SideIBM)
		rt, _ := startBridge(t, c, "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_AUTH_MODE=token",
			"CREDBRIDGE_UPSTREAM_AUTH_TOKEN_FILE="+secretFile(t, "demo-service-token"))
		checkServiceCredentials(t, c, rt, func(tok string) bool { return tok == "demo-service-token" })
	})
	t.Run("keystone", func(t *testing.T) {
		c := newCloud(t, translate.SideIBM)
		rt, _ := startBridge(t, c, "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_AUTH_MODE=keystone",
			"CREDBRIDGE_UPSTREAM_AUTH_KEYSTONE_URL="+c.idURL, "CREDBRIDGE_UPSTREAM_AUTH_KEYSTONE_USER_NAME=credbridge",
			"CREDBRIDGE_UPSTREAM_AUTH_KEYSTONE_USER_DOMAIN=demo", "CREDBRIDGE_UPSTREAM_AUTH_KEYSTONE_PASSWORD_FILE="+secretFile(t, "svc-pass"))
		checkServiceCredentials(t, c, rt, func(tok string) bool { return strings.HasPrefix(tok, "tok-") })
		seen := map[string]bool{}
		for _, tok := range c.seenTokens() {
			seen[tok] = true
		}
		if len(seen) != 1 {
			t.Fatalf("%d different service tokens: one login should serve them all", len(seen))
		}
	})
}

// Secret files are read once, by config.Load: Start builds from what was read,
// so a token file removed after loading changes nothing.
func TestSecretsReadOnceByLoad(t *testing.T) {
	c := newCloud(t, translate.SideIBM)
	tokenFile := secretFile(t, "demo-service-token")
	cfg, err := config.Load("", []string{"CREDBRIDGE_LISTEN=127.0.0.1:0", "CREDBRIDGE_ADMIN_LISTEN=127.0.0.1:0",
		"CREDBRIDGE_UPSTREAM_URL=" + c.upURL, "CREDBRIDGE_IDENTITY_URL=" + c.idURL, "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob",
		"CREDBRIDGE_UPSTREAM_AUTH_MODE=token", "CREDBRIDGE_UPSTREAM_AUTH_TOKEN_FILE=" + tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	rt, err := Start(cfg, Options{})
	if err != nil {
		t.Fatalf("start after the secret file went: %v", err)
	}
	defer func() { _ = rt.Shutdown(context.Background()) }()
	checkServiceCredentials(t, c, rt, func(tok string) bool { return tok == "demo-service-token" })
}

// RestartNeeded names exactly the start-only keys that changed.
func TestRestartNeeded(t *testing.T) {
	tests := []struct {
		name string
		edit func(*config.Config)
		want string
	}{
		{"nothing", func(*config.Config) {}, ""},
		{"reloadable keys only", func(c *config.Config) {
			c.Log.Level, c.Runtime.GOMAXPROCS, c.Limits.MaxConcurrent, c.Upstream.Timeout = "debug", 2, 10, time.Second
		}, ""},
		{"listeners", func(c *config.Config) { c.Listen, c.AdminListen = "127.0.0.1:1", "127.0.0.1:2" }, "listen,admin_listen"},
		{"connection cap, pprof, audit", func(c *config.Config) { c.Limits.MaxConns, c.Debug.PProf, c.Audit.File = 1, true, "-" },
			"limits.max_conns,debug.pprof,audit.file"},
		{"longer upstream timeout", func(c *config.Config) { c.Upstream.Timeout = time.Minute }, "upstream.timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := config.Default()
			tc.edit(next)
			if got := strings.Join(RestartNeeded(config.Default(), next), ","); got != tc.want {
				t.Fatalf("%q, want %q", got, tc.want)
			}
		})
	}
}

// checkServiceCredentials: oscred clients of vendor A manage keys on an ec2blob
// vendor B that only knows the bridge's service account; the bridge's policy
// still keeps users to their own keys.
func checkServiceCredentials(t *testing.T, c *cloud, rt *Runtime, isService func(string) bool) {
	t.Helper()
	base := "http://" + rt.Addr()
	r := bt.Do(t, base, "POST", "/v3.0/OS-CREDENTIAL/credentials", bt.Alice, "application/json;charset=utf8", `{"credential":{"user_id":"u-alice"}}`)
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	ak := r.Cred()["access"].(string)
	if r = bt.Do(t, base, "PUT", "/v3.0/OS-CREDENTIAL/credentials/"+ak, bt.Alice, "application/json;charset=utf8", `{"credential":{"status":"inactive"}}`); r.Status != 200 {
		t.Fatalf("owner update: %d %s", r.Status, r.Body)
	}
	if r = bt.Do(t, base, "PUT", "/v3.0/OS-CREDENTIAL/credentials/"+ak, bt.Bob, "application/json;charset=utf8", `{"credential":{"status":"active"}}`); r.Status != 403 {
		t.Fatalf("bob updated alice's key through the service account: %d %s", r.Status, r.Body)
	}
	if r = bt.Do(t, base, "GET", "/v3.0/OS-CREDENTIAL/credentials", bt.Bob, "", ""); r.Status != 200 || strings.Contains(string(r.Body), ak) {
		t.Fatalf("bob's list through the service account shows alice's key: %s", r.Body)
	}
	if k, _ := c.store.Get(ak); k.Active {
		t.Fatal("update lost")
	}
	for _, tok := range c.seenTokens() {
		if !isService(tok) {
			t.Fatalf("upstream received %q, not the service credentials", tok)
		}
	}
}

// TestGracefulShutdownDrainsInFlight: requests in flight when shutdown starts
// all finish; readiness turns 503 at once; new connections are refused.
func TestGracefulShutdownDrainsInFlight(t *testing.T) {
	c := newCloud(t, translate.SideOscred)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(700 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"credentials":[]}`))
	}))
	t.Cleanup(slow.Close)
	c.upURL = slow.URL
	rt, _ := startBridge(t, c)
	base, admin := "http://"+rt.Addr(), "http://"+rt.AdminAddr()
	const n = 20
	results := make(chan int, n)
	for i := 0; i < n; i++ {
		go func() { results <- bt.Do(t, base, "GET", "/v3.0/OS-CREDENTIAL/credentials", bt.Alice, "", "").Status }()
	}
	time.Sleep(300 * time.Millisecond) // all are waiting on the upstream now
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- rt.Shutdown(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	if r := bt.Do(t, admin, "GET", "/readyz", "", "", ""); r.Status != 503 {
		t.Fatalf("readyz while draining: %d", r.Status)
	}
	if _, err := http.Get(base + "/v3.0/OS-CREDENTIAL/credentials"); err == nil {
		t.Fatal("a new connection was accepted during shutdown")
	}
	for i := 0; i < n; i++ {
		if s := <-results; s != 200 {
			t.Fatalf("in-flight request dropped: %d", s)
		}
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// limits.max_conns reaches the client listener: with a cap of two, two idle
// keep-alive clients fill it and a third waits (idle connections are reclaimed
// only after 10 s); when one client lets its connection go the third is served.
func TestClientConnectionCap(t *testing.T) {
	c := newCloud(t, translate.SideOscred)
	rt, _ := startBridge(t, c, "CREDBRIDGE_LIMITS_MAX_CONNS=2")
	base := "http://" + rt.Addr()
	call := func(cl *http.Client) error {
		resp, err := cl.Get(base + "/v3.0/OS-CREDENTIAL/credentials")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 { // no token: answered by the bridge itself
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	client := func() *http.Client { return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{}} }
	a, b := client(), client()
	for _, cl := range []*http.Client{a, b} {
		if err := call(cl); err != nil {
			t.Fatal(err)
		}
	}
	third := make(chan error, 1)
	go func() { third <- call(client()) }()
	select {
	case err := <-third:
		t.Fatalf("a third connection was served at a cap of two (%v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	m := bt.Do(t, "http://"+rt.AdminAddr(), "GET", "/metrics", "", "", "")
	if !regexp.MustCompile(`(?m)^credbridge_connections_open 2$`).Match(m.Body) ||
		!regexp.MustCompile(`(?m)^credbridge_connections_waited_total 1$`).Match(m.Body) {
		t.Fatalf("metrics at the cap:\n%s", m.Body)
	}
	a.CloseIdleConnections()
	select {
	case err := <-third:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the third client was not served after a slot freed")
	}
}

func (c *cloud) seenBaggage() []string {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	return append([]string(nil), c.baggage...)
}
