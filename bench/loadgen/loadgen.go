// Package loadgen sends requests at a fixed rate (open loop) and reports
// latency percentiles. Latency is measured from each request's scheduled start,
// so a stalled target is charged for the requests it delayed (no coordinated
// omission), as vegeta and wrk2 do.
package loadgen

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Target is one request to repeat.
type Target struct {
	Method, URL string
	Header      http.Header
	Body        []byte
	// Conns caps the connections to the target, as wrk2's -c does: a request
	// that finds them all busy waits in the client, and the wait counts in its
	// latency (it is measured from the scheduled start). 0: no cap, every
	// request that finds no idle connection dials one — on a small machine the
	// generator's own dial storm then dominates what it measures.
	Conns int
	// Window, when set, also reports the latencies of the requests scheduled
	// in each consecutive window of that length (Result.Windows): where in the
	// run a tail sits, e.g. a cold start's first 100 ms against the rest.
	Window time.Duration
}

// Window is the latency of the requests scheduled in [Start, Start+window).
type Window struct {
	Start         time.Duration
	N             int
	P50, P99, Max time.Duration
}

func (w Window) String() string {
	return fmt.Sprintf("from_ms=%d n=%d p50_us=%d p99_us=%d max_us=%d",
		w.Start.Milliseconds(), w.N, w.P50.Microseconds(), w.P99.Microseconds(), w.Max.Microseconds())
}

// Result summarises a run.
type Result struct {
	Rate      int
	Sent, OK  int
	Errors    int
	P50, P99  time.Duration
	P999, Max time.Duration
	Windows   []Window // with Target.Window only
}

func (r Result) String() string {
	return fmt.Sprintf("rate=%d sent=%d ok=%d errors=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d",
		r.Rate, r.Sent, r.OK, r.Errors, r.P50.Microseconds(), r.P99.Microseconds(), r.P999.Microseconds(), r.Max.Microseconds())
}

// Run sends rate requests per second for d, bounded in count (rate*d) and time
// (d plus the client timeout).
func Run(t Target, rate int, d time.Duration) Result {
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: t.Conns, DisableCompression: true},
	}
	n := int(float64(rate) * d.Seconds())
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func(i int, at time.Time) {
			defer wg.Done()
			req, err := http.NewRequest(t.Method, t.URL, bytes.NewReader(t.Body))
			if err != nil {
				return
			}
			req.Header = t.Header.Clone()
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok[i] = resp.StatusCode < 400
			}
			lat[i] = time.Since(at)
		}(i, at)
	}
	wg.Wait()
	client.CloseIdleConnections()
	r := Result{Rate: rate, Sent: n}
	for i := range ok {
		if ok[i] {
			r.OK++
		} else {
			r.Errors++
		}
	}
	if t.Window > 0 {
		r.Windows = windows(lat, interval, t.Window)
	}
	sortDurations(lat)
	r.P50, r.P99, r.P999, r.Max = pct(lat, 0.50), pct(lat, 0.99), pct(lat, 0.999), pct(lat, 1)
	return r
}

// windows splits lat, in scheduled order one interval apart, into windows of
// length w; lat is left as it was.
func windows(lat []time.Duration, interval, w time.Duration) []Window {
	per := max(int(w/interval), 1)
	var out []Window
	for i := 0; i < len(lat); i += per {
		part := append([]time.Duration(nil), lat[i:min(i+per, len(lat))]...)
		sortDurations(part)
		out = append(out, Window{Start: time.Duration(i) * interval, N: len(part),
			P50: pct(part, 0.50), P99: pct(part, 0.99), Max: pct(part, 1)})
	}
	return out
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(a, b int) bool { return d[a] < d[b] }) }

// pct is the p-quantile of sorted (0 when empty).
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}
