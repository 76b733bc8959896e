package policy

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// reach is what the identity client last learnt of the service's
// reachability, from real validations and from probes. /readyz reads it; it
// never makes a call itself, so polling /readyz cannot be turned into load on
// the identity service.
type reach struct {
	down atomic.Pointer[downSince] // nil: the last call got an answer
	seen atomic.Int64              // unix nanoseconds of the last outcome
}

type downSince struct {
	since time.Time
	cause string
}

// note records one call's outcome: err non-nil when no answer came (or 5xx).
func (r *reach) note(now time.Time, err error) {
	r.seen.Store(now.UnixNano())
	if err == nil {
		r.down.Store(nil)
		return
	}
	if cur := r.down.Load(); cur != nil {
		r.down.Store(&downSince{since: cur.since, cause: err.Error()})
		return
	}
	r.down.Store(&downSince{since: now, cause: err.Error()})
}

// Check is nil while the identity service answers; else it says since when
// it does not and why. Cached tokens keep working meanwhile; new ones get 503.
func (c *IdentityClient) Check() error {
	d := c.reach.down.Load()
	if d == nil {
		return nil
	}
	return fmt.Errorf("identity service unreachable since %s (%s); cached tokens still serve, new ones get 503",
		d.since.UTC().Format(time.RFC3339), d.cause)
}

// ProbeIfQuiet asks the identity service for its version document (GET
// {url}/v3, unauthenticated: no token is sent) when no call has had an
// outcome for quiet, so that a service that dies while every token is cached
// still shows in /readyz, and one that comes back clears it. Any answer
// below 500 counts as reachable.
func (c *IdentityClient) ProbeIfQuiet(ctx context.Context, quiet time.Duration) {
	if c.now().Sub(time.Unix(0, c.reach.seen.Load())) < quiet {
		return
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, probeKey{}, true), http.MethodGet, c.base+"/v3", nil)
	if err != nil {
		c.reach.note(c.now(), err)
		return
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		c.reach.note(c.now(), redactURLError(err))
		return
	}
	resp.Body.Close()
	c.reach.note(c.now(), answerErr(resp.StatusCode))
}

// answerErr is the reachability verdict of a status: 5xx is a service that
// cannot serve (or a gateway in front of one that is gone).
func answerErr(status int) error {
	if status >= 500 {
		return fmt.Errorf("identity service answered %d", status)
	}
	return nil
}

type probeKey struct{}

// IsProbe reports whether r is a reachability probe (tracing leaves them out:
// one every few seconds would bury the real calls).
func IsProbe(r *http.Request) bool { return r.Context().Value(probeKey{}) != nil }
