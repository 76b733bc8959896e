package loadgen

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunHoldsTheRateAndOrdersPercentiles(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	start := time.Now()
	r := Run(Target{Method: "GET", URL: srv.URL, Header: http.Header{}}, 200, time.Second)
	if took := time.Since(start); took < 900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("200 requests at 200/s took %s", took)
	}
	if r.Sent != 200 || hits.Load() != 200 || r.Errors != 20 || r.OK != 180 {
		t.Fatalf("%s (server saw %d)", r, hits.Load())
	}
	if !(r.P50 > 0 && r.P50 <= r.P99 && r.P99 <= r.P999 && r.P999 <= r.Max) {
		t.Fatalf("percentiles out of order: %s", r)
	}
}

// With Conns set, the target never sees more connections than that, and the
// requests that waited for one are charged for the wait.
func TestRunCapsConnectionsAndChargesTheWait(t *testing.T) {
	var open, peak atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			if n := open.Add(1); n > peak.Load() {
				peak.Store(n)
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()
	// 400 requests/s of 20 ms each need ~8 connections; 2 must queue.
	r := Run(Target{Method: "GET", URL: srv.URL, Header: http.Header{}, Conns: 2}, 400, 500*time.Millisecond)
	if r.OK != 200 || peak.Load() > 2 {
		t.Fatalf("%s; peak connections %d, want at most 2", r, peak.Load())
	}
	// Two connections serve 100 requests/s; the last of 200 waits ~1.5 s.
	if r.Max < time.Second {
		t.Fatalf("the queue's wait was not charged: %s", r)
	}
}

// With Window set, a stall at the start shows in the first window only: the
// requests scheduled during it are charged for it, the later ones are not.
func TestRunWindowsPlaceAStartStall(t *testing.T) {
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if time.Since(start) < 150*time.Millisecond {
			time.Sleep(150*time.Millisecond - time.Since(start))
		}
	}))
	defer srv.Close()
	r := Run(Target{Method: "GET", URL: srv.URL, Header: http.Header{}, Window: 200 * time.Millisecond}, 200, time.Second)
	if len(r.Windows) != 5 {
		t.Fatalf("%d windows, want 5: %v", len(r.Windows), r.Windows)
	}
	n := 0
	for i, w := range r.Windows {
		n += w.N
		if w.Start != time.Duration(i)*200*time.Millisecond || !(w.P50 <= w.P99 && w.P99 <= w.Max) {
			t.Fatalf("window %d: %s", i, w)
		}
	}
	first, last := r.Windows[0], r.Windows[4]
	if n != r.Sent || first.Max < 100*time.Millisecond || last.Max >= 100*time.Millisecond || r.Max < first.Max {
		t.Fatalf("windows %v do not place the stall (run %s)", r.Windows, r)
	}
}
