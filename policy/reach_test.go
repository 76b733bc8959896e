package policy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestIdentityReachability: what each outcome of a real call does to Check,
// the /readyz verdict.
func TestIdentityReachability(t *testing.T) {
	var status atomic.Int64
	var hang, probeToken atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3" {
			probeToken.Store(r.Header.Get("X-Auth-Token") != "" || r.Header.Get("X-Subject-Token") != "")
		}
		if hang.Load() {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	c := NewIdentityClient(IdentityConfig{URL: srv.URL, Timeout: 300 * time.Millisecond}, "", nil)
	const secret = "a-caller-token-0123456789"
	validate := func(ctx context.Context) { _, _ = c.Validate(ctx, secret) }
	steps := []struct {
		name   string
		status int
		hang   bool
		ctx    func() (context.Context, context.CancelFunc)
		down   bool
	}{
		{"a rejected token is an answer", 401, false, nil, false},
		{"5xx is a service that cannot serve", 503, false, nil, true},
		{"an answer clears it", 404, false, nil, false},
		{"a caller who hangs up says nothing of the service", 0, true, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, false},
		{"identity.timeout passing is unreachable", 0, true, nil, true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			status.Store(int64(s.status))
			hang.Store(s.hang)
			ctx, cancel := context.Background(), func() {}
			if s.ctx != nil {
				ctx, cancel = s.ctx()
			}
			defer cancel()
			validate(ctx)
			if err := c.Check(); (err != nil) != s.down {
				t.Fatalf("Check() = %v, want down=%v", err, s.down)
			} else if err != nil && (!strings.Contains(err.Error(), "identity service unreachable since") || strings.Contains(err.Error(), secret)) {
				t.Fatalf("Check() = %v", err)
			}
		})
	}
	t.Run("a probe sends no token and clears it", func(t *testing.T) {
		hang.Store(false)
		status.Store(http.StatusNotFound) // any answer below 500 is a live service
		c.ProbeIfQuiet(context.Background(), 0)
		if err := c.Check(); err != nil || probeToken.Load() {
			t.Fatalf("Check() = %v, token sent: %v", err, probeToken.Load())
		}
	})
}
