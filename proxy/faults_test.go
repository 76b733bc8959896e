package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/credbridge/credbridge/config"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/translate"
)

// closedURL is an address nothing listens on.
func closedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

// slowServer answers nothing for two seconds.
func slowServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestIdentityFaultsFailClosed(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	slow := slowServer(t)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html>not a token</html>"))
	}))
	t.Cleanup(garbage.Close)
	for name, url := range map[string]string{"unreachable": closedURL(t), "500": broken.URL, "slow": slow.URL, "garbage 200": garbage.URL} {
		t.Run(name, func(t *testing.T) {
			e := bt.Start(t, translate.SideOscred, func(c *config.Config) {
				c.Identity.URL = url
				c.Identity.Timeout = 300 * time.Millisecond
			})
			for _, client := range sides {
				r := e.Do("GET", bt.Base(client), bt.Admin, "", "")
				want(t, client, r, 503)
			}
			if e.Upstream.Requests() != 0 {
				t.Fatal("a request reached the upstream without a validated token")
			}
		})
	}
}

func TestUpstreamFaults(t *testing.T) {
	slow := slowServer(t)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>maintenance</html>"))
	}))
	t.Cleanup(garbage.Close)
	// An IBM accesser that refuses account privileges with its 405.
	noPriv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"error":{"code":405,"title":"Method Not Allowed","message":"no privileges on this storage account"}}`))
	}))
	t.Cleanup(noPriv.Close)
	tests := []struct {
		name   string
		up     translate.Side
		url    string
		client translate.Side
		status int
	}{
		{"unreachable to oscred client", translate.SideIBM, closedURL(t), translate.SideOscred, 502},
		{"unreachable to ibm client", translate.SideOscred, closedURL(t), translate.SideIBM, 502},
		{"timeout", translate.SideOscred, slow.URL, translate.SideKeystone, 504},
		{"garbage answer cross", translate.SideOscred, garbage.URL, translate.SideIBM, 502},
		{"garbage answer same dialect", translate.SideOscred, garbage.URL, translate.SideOscred, 502},
		{"ec2blob 405 is oscred 403", translate.SideIBM, noPriv.URL, translate.SideOscred, 403},
		{"ec2blob 405 stays for ec2blob", translate.SideIBM, noPriv.URL, translate.SideKeystone, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := bt.Start(t, tc.up, func(c *config.Config) {
				c.Upstream.URL = tc.url
				c.Upstream.Timeout = 300 * time.Millisecond
			})
			r := e.Do("GET", bt.KeyPath(tc.client, "LOSZM4YRVLKOY9ABCDEF"), bt.Admin, "", "")
			want(t, tc.client, r, tc.status)
		})
	}
}

// TestSameDialectPassesBodiesUntouched records what the upstream receives and
// what the client gets back.
func TestSameDialectPassesBodiesUntouched(t *testing.T) {
	const answer = `{"credential":{"status":"inactive","access":"LOSZM4YRVLKOY9ABCDEF","create_time":"2020-01-08T06:26:08.123059Z","user_id":"u-alice","extra":{"kept":true}}}`
	var got []byte
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = make([]byte, r.ContentLength)
		_, _ = r.Body.Read(got)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(rec.Close)
	e := bt.Start(t, translate.SideOscred, func(c *config.Config) { c.Upstream.URL = rec.URL })
	const body = `{"credential": {"status": "inactive", "vendor_field": [1, 2]}}`
	r := e.Do("PUT", "/v3.0/OS-CREDENTIAL/credentials/LOSZM4YRVLKOY9ABCDEF", bt.Admin, "application/json;charset=utf8", body)
	want(t, translate.SideOscred, r, 200)
	if string(got) != body {
		t.Fatalf("upstream received %s", got)
	}
	if string(r.Body) != answer {
		t.Fatalf("client received %s", r.Body)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	slowUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"credentials":[]}`))
	}))
	t.Cleanup(slowUp.Close)
	e := bt.Start(t, translate.SideOscred, func(c *config.Config) {
		c.Upstream.URL = slowUp.URL
		c.Limits.MaxConcurrent = 2
	})
	done := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() { done <- e.Do("GET", bt.Base(translate.SideOscred), bt.Alice, "", "").Status }()
	}
	<-entered
	<-entered
	for _, client := range sides {
		r := e.Do("GET", bt.Base(client), bt.Alice, "", "")
		want(t, client, r, 503)
		if r.Header.Get("Retry-After") != "1" {
			t.Fatalf("no Retry-After: %v", r.Header)
		}
	}
	close(release)
	for i := 0; i < 2; i++ {
		if s := <-done; s != 200 {
			t.Fatalf("in-flight request got %d", s)
		}
	}
	if r := e.Do("GET", bt.Base(translate.SideOscred), bt.Alice, "", ""); r.Status != 200 {
		t.Fatalf("after the burst: %d", r.Status)
	}
}

// TestRetriesOnlyIdempotent: a connection dropped before any answer is retried
// once for GET/PUT/PATCH/DELETE, never for a POST toward oscred (a second key).
func TestRetriesOnlyIdempotent(t *testing.T) {
	var mu sync.Mutex
	attempts := map[string]int{}
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts[r.Method]++
		n := attempts[r.Method]
		mu.Unlock()
		if n == 1 { // drop the first attempt of each method without answering
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(201)
		}
		_, _ = w.Write([]byte(fixedAnswer))
	}))
	t.Cleanup(flaky.Close)
	e := bt.Start(t, translate.SideOscred, func(c *config.Config) { c.Upstream.URL = flaky.URL })
	path := "/v3.0/OS-CREDENTIAL/credentials/LOSZM4YRVLKOY9ABCDEF"
	if r := e.Do("PUT", path, bt.Admin, "application/json", `{"credential":{"status":"inactive"}}`); r.Status != 200 {
		t.Fatalf("PUT after a dropped connection: %d %s", r.Status, r.Body)
	}
	r := e.Do("POST", "/v3.0/OS-CREDENTIAL/credentials", bt.Admin, "application/json", `{"credential":{"user_id":"u-alice"}}`)
	want(t, translate.SideOscred, r, 502)
	mu.Lock()
	defer mu.Unlock()
	if attempts["PUT"] != 2 || attempts["POST"] != 1 {
		t.Fatalf("attempts %v: want PUT retried once, POST never", attempts)
	}
}

// With upstream.max_conns reached, a request waits for a free connection (and
// then succeeds) instead of failing or opening another connection.
func TestUpstreamPoolWaitsForAConnection(t *testing.T) {
	var (
		mu      sync.Mutex
		seen    int
		remotes = map[string]bool{}
		target  http.Handler
	)
	first, release := make(chan struct{}), make(chan struct{})
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen++
		n := seen
		remotes[r.RemoteAddr] = true
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release
		}
		target.ServeHTTP(w, r)
	}))
	t.Cleanup(gate.Close)
	e := bt.Start(t, translate.SideOscred, func(c *config.Config) {
		u, _ := url.Parse(c.Upstream.URL)
		target = httputil.NewSingleHostReverseProxy(u)
		c.Upstream.URL = gate.URL
		c.Upstream.MaxConns = 1
	})
	done := make(chan int, 2)
	get := func() { done <- e.Do("GET", bt.Base(translate.SideOscred), bt.Alice, "", "").Status }
	go get()
	<-first // the only connection is busy
	go get()
	select {
	case code := <-done:
		t.Fatalf("second request answered %d while the only upstream connection was busy", code)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	for i := 0; i < 2; i++ {
		if code := <-done; code != 200 {
			t.Fatalf("request answered %d, want 200 once the connection was free", code)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if seen != 2 || len(remotes) != 1 {
		t.Fatalf("upstream saw %d requests over %d connections, want 2 over 1", seen, len(remotes))
	}
}
