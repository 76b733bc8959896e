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
}

// Result summarises a run.
type Result struct {
	Rate      int
	Sent, OK  int
	Errors    int
	P50, P99  time.Duration
	P999, Max time.Duration
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
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		i := int(p * float64(len(lat)-1))
		return lat[i]
	}
	r.P50, r.P99, r.P999 = pct(0.50), pct(0.99), pct(0.999)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r
}
