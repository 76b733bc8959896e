package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbridge/credbridge/emulator"
)

func TestKeystoneLoginOneAtATimeAndRenewed(t *testing.T) {
	dir := emulator.NewDirectory(emulator.DemoUsers())
	dir.TokenTTL = 10 * time.Minute
	idn := emulator.NewIdentity(dir)
	var down atomic.Bool
	var attempts atomic.Int64 // logins tried, answered or not
	h := idn.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	k := NewKeystoneLogin(Account{URL: srv.URL, UserName: "credbridge", UserDomain: "demo"}, "svc-pass", time.Second, nil)
	now := time.Now()
	k.now = func() time.Time { return now }

	var wg sync.WaitGroup
	toks := make([]string, 100)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := k.UpstreamToken(context.Background(), "caller")
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		}()
	}
	wg.Wait()
	if idn.Requests() != 1 {
		t.Fatalf("%d logins for 100 concurrent callers", idn.Requests())
	}
	for _, tok := range toks {
		if tok != toks[0] || tok == "caller" || tok == "" {
			t.Fatalf("tokens %q vs %q", tok, toks[0])
		}
	}
	if u, _, ok := dir.Lookup(context.Background(), toks[0]); !ok || u.ID != "u-svc" {
		t.Fatal("service token not valid for the service user")
	}
	// Past 80% of its life the token is renewed before it expires.
	now = now.Add(9 * time.Minute)
	tok, err := k.UpstreamToken(context.Background(), "caller")
	if err != nil || tok == toks[0] || idn.Requests() != 2 {
		t.Fatalf("not renewed: %v, %d logins", err, idn.Requests())
	}
	// A failed renewal keeps the old token while it is still valid (the second
	// token expires 10 minutes after its real issue, renewal is due 1 minute before).
	down.Store(true)
	now = now.Add(30 * time.Second)
	if again, err := k.UpstreamToken(context.Background(), "caller"); err != nil || again != tok {
		t.Fatalf("renewal failure: %v", err)
	}
	// ...and does not try again on every request while the identity service is down.
	logins := attempts.Load()
	for i := 0; i < 10; i++ {
		if again, err := k.UpstreamToken(context.Background(), "caller"); err != nil || again != tok {
			t.Fatalf("during the back-off: %v", err)
		}
	}
	if n := attempts.Load() - logins; n != 0 {
		t.Fatalf("%d login attempts during the back-off", n)
	}
	now = now.Add(6 * time.Second) // back-off over: one more try
	_, _ = k.UpstreamToken(context.Background(), "caller")
	if n := attempts.Load() - logins; n != 1 {
		t.Fatalf("%d login attempts after the back-off, want 1", n)
	}
	srv.Close()
	bad := NewKeystoneLogin(Account{URL: srv.URL, UserName: "credbridge"}, "wrong", time.Second, nil)
	if _, err := bad.UpstreamToken(context.Background(), "caller"); err == nil {
		t.Fatal("login against a dead identity service succeeded")
	}
}
