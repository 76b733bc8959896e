package loadgen

import (
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
