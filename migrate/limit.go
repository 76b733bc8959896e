package migrate

import (
	"context"
	"net/http"
	"time"
)

// Limited bounds the calls in flight toward one side and backs off when the
// side says it is overloaded (429, or 503), so a backfill of thousands of keys
// stays inside a cloud API's rate limit instead of failing on it.
type Limited struct {
	Backend
	sem chan struct{}
	// Backoff is the first wait after a 429/503 (default 250 ms); it doubles up
	// to MaxBackoff (default 10 s) for at most Attempts tries (default 8).
	Backoff, MaxBackoff time.Duration
	Attempts            int
	// Throttled counts the 429/503 answers waited out (for the summary).
	Throttled func()
}

// DefaultConcurrency is the calls in flight toward each side when
// --concurrency is not given: low enough for the published per-account limits
// of the clouds' IAM APIs (tens of requests a second), high enough that the
// round trip, not the count, bounds a backfill on a near backend.
const DefaultConcurrency = 8

// NewLimited wraps b with at most n calls in flight.
func NewLimited(b Backend, n int) *Limited {
	if n < 1 {
		n = 1
	}
	return &Limited{Backend: b, sem: make(chan struct{}, n), Backoff: 250 * time.Millisecond,
		MaxBackoff: 10 * time.Second, Attempts: 8}
}

// Call waits for a slot, calls, and on 429/503 waits and tries again; the
// slot is given back while waiting, so a throttled side does not hold others.
func (l *Limited) Call(ctx context.Context, r Call) (int, []byte, error) {
	wait := l.Backoff
	for attempt := 1; ; attempt++ {
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
		st, body, err := l.Backend.Call(ctx, r)
		<-l.sem
		if err != nil || (st != http.StatusTooManyRequests && st != http.StatusServiceUnavailable) || attempt >= l.Attempts {
			return st, body, err
		}
		if l.Throttled != nil {
			l.Throttled()
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return st, body, ctx.Err()
		}
		wait = min(2*wait, l.MaxBackoff)
	}
}
