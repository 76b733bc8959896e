package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/internal/testing/fixed"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/proxy"
)

// The benchmark's fixtures (../shared/bench): fixed oscred answers and a
// Keystone token that is a secu_admin.
const (
	fixedAnswer = `{"credential":{"status":"inactive","access":"LOSZM4YRVLKOY9ABCDEF","create_time":"2020-01-08T06:26:08.123059Z","user_id":"07609fb9358010e21f7bc00375","description":"IAMDescription"}}`
	fixedToken  = `{"token":{"expires_at":"2099-01-01T00:00:00.000000Z","user":{"id":"07609fb9358010e21f7bc00375","name":"admin","domain":{"id":"d1","name":"dom"}},"project":{"id":"731fc6f265cd486d900f16e84c5cb594"},"roles":[{"id":"r1","name":"secu_admin"},{"id":"r2","name":"te_admin"}]}}`
	patchB      = `{"credential":{"blob":{"access":"LOSZM4YRVLKOY9ABCDEF","secret":"secretKey","status":"Inactive"},"project_id":"731fc6f265cd486d900f16e84c5cb594","type":"ec2","user_id":"07609fb9358010e21f7bc00375"}}`
	putA        = `{"credential":{"status":"inactive","description":"IAMDescription"}}`
)

// benchHandler is the full bridge handler (policy with a warm token cache,
// translation, upstream over loopback HTTP) called in process. The upstream is
// a fixed answer on fasthttp's server (internal/testing/fixed): the allocations
// counted are the bridge's and the test request's, not the fixture's.
func benchHandler(b *testing.B) (http.Handler, *fixed.Server) {
	up := fixed.Start(b, fixedAnswer)
	idn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(fixedToken))
	}))
	b.Cleanup(idn.Close)
	cfg, err := config.Load("", []string{"CREDBRIDGE_UPSTREAM_URL=" + up.URL, "CREDBRIDGE_IDENTITY_URL=" + idn.URL})
	if err != nil {
		b.Fatal(err)
	}
	cache := policy.NewCache(policy.NewIdentityClient(cfg.Identity, "", nil), policy.CacheOptions{TTL: cfg.Cache.TTL, LocalTTL: cfg.Cache.LocalTTL})
	po, err := proxy.OptionsFrom(cfg)
	if err != nil {
		b.Fatal(err)
	}
	p, err := proxy.New(po, proxy.Deps{Validator: cache, Owners: cache.Owners(cfg.Upstream.URL), AccessLog: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	return p.Handler(), up
}

// benchRequests serves method path body through the handler; the upstream
// must have seen want (its method, path and body) by the end.
func benchRequests(b *testing.B, method, path, body, want string) {
	h, up := benchHandler(b)
	run := func() int {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Auth-Token", "tok-admin-0123456789")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	if c := run(); c != 200 {
		b.Fatalf("status %d", c)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if c := run(); c != 200 {
			b.Fatalf("status %d", c)
		}
	}
	b.StopTimer()
	if n := up.Requests(); n < int64(b.N) || up.Last() != want {
		b.Fatalf("upstream saw %d requests for %d, the last %q, want %q", n, b.N, up.Last(), want)
	}
}

// BenchmarkHandlerPatchB2A: ec2blob PATCH in, oscred PUT out (the benchmark's B2A).
func BenchmarkHandlerPatchB2A(b *testing.B) {
	benchRequests(b, "PATCH", "/credentials/LOSZM4YRVLKOY9ABCDEF", patchB,
		`PUT /v3.0/OS-CREDENTIAL/credentials/LOSZM4YRVLKOY9ABCDEF {"credential":{"status":"inactive"}}`)
}

// BenchmarkHandlerPutA2A: oscred PUT passed through with policy (the A2A).
func BenchmarkHandlerPutA2A(b *testing.B) {
	benchRequests(b, "PUT", "/v3.0/OS-CREDENTIAL/credentials/LOSZM4YRVLKOY9ABCDEF", putA, "PUT /v3.0/OS-CREDENTIAL/credentials/LOSZM4YRVLKOY9ABCDEF "+putA)
}
