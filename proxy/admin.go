package proxy

import (
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Health tracks what /readyz reports: shutting down, and named degraded parts
// (for example Redis) that the bridge serves around.
type Health struct {
	shutting atomic.Bool
	mu       sync.Mutex
	checks   map[string]func() error
}

// NewHealth is ready and not degraded.
func NewHealth() *Health { return &Health{checks: map[string]func() error{}} }

// ShuttingDown makes /readyz answer 503 so load balancers drain the bridge.
func (h *Health) ShuttingDown() { h.shutting.Store(true) }

// AddCheck registers a part; a non-nil error from check marks it degraded.
func (h *Health) AddCheck(name string, check func() error) {
	h.mu.Lock()
	h.checks[name] = check
	h.mu.Unlock()
}

// AdminHandler serves /healthz, /readyz, metrics when given, and pprof when asked.
func AdminHandler(h *Health, metrics http.Handler, pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if h.shutting.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("shutting down\n"))
			return
		}
		var degraded []string
		h.mu.Lock()
		for name, check := range h.checks {
			if err := check(); err != nil {
				degraded = append(degraded, name+": "+err.Error())
			}
		}
		h.mu.Unlock()
		sort.Strings(degraded)
		if len(degraded) == 0 {
			_, _ = w.Write([]byte("ready\n"))
			return
		}
		// Degraded parts are served around (e.g. Redis down: L1 and identity), so
		// the bridge stays in rotation and says what is wrong.
		_, _ = w.Write([]byte("ready, degraded: " + strings.Join(degraded, "; ") + "\n"))
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}
