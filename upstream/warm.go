package upstream

import (
	"sync"
	"sync/atomic"
	"time"
)

// WarmWait bounds how long New waits for the connections Options.Warm asks
// for: a backend that is slow or down delays a start (or a reload) by at most
// this, never fails it. Dials still under way go on and join the pool.
const WarmWait = 500 * time.Millisecond

// warm dials n connections to the backend at once and leaves them idle in the
// pool; it returns how many were ready within wait. Why: a bridge started
// under traffic otherwise meets its first burst with an empty pool, and every
// request of the burst dials its own connection at the same moment (measured:
// 49-128 dials in the first ~50 ms of a 5,000 req/s burst; docs/performance.md,
// "Cold start"). Each connection is held until all are dialed, or the pool would
// hand one back out instead of dialing the next.
func (c *Client) warm(n int, wait time.Duration) int {
	var ready atomic.Int64
	var wg sync.WaitGroup
	release := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			cc, err := c.hc.AcquireConn(dialTimeout, false)
			if err == nil {
				ready.Add(1)
			}
			wg.Done()
			if err == nil {
				<-release
				c.hc.ReleaseConn(cc)
			}
		}()
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	t := time.NewTimer(wait)
	select {
	case <-all:
	case <-t.C:
	}
	t.Stop()
	got := int(ready.Load())
	close(release)
	return got
}
