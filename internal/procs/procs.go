// Package procs sizes GOMAXPROCS to the load the process carries.
//
// Why: net/http starts a goroutine per request (its background read), and the
// Go scheduler wakes an idle P's thread for every goroutine it readies while a P
// is idle. A bridge that uses about one core on a two-core machine therefore
// spends much of its time putting threads to sleep and waking them: measured
// on the side-by-side benchmark, 0.72 context switches per request and 88 µs of
// CPU per request with two Ps against 0.12 and 50 µs with one (docs/performance.md).
// More Ps only pay when the machine has a core to give them, so the controller
// starts at one P, adds Ps while the process keeps its Ps busy and the machine
// has whole cores idle, and gives them back when they sit idle or when the
// machine has no CPU left for them to run on.
package procs

import (
	"context"
	"math"
	"runtime"
	"time"
)

// Sample is what one interval looked like, both in cores (CPU seconds per second).
type Sample struct {
	Busy float64 // CPU this process used (user + system)
	Idle float64 // CPU the machine left idle
}

// Thresholds, in fractions of a core. Between grow and shrink lies a band in
// which the count stays put, so it does not flap around a steady load.
const (
	growBusy   = 0.8  // grow when the process keeps this share of its Ps busy...
	growIdle   = 0.75 // ...and at least this much of a core is idle machine-wide
	shrinkBusy = 0.7  // shrink to what keeps the Ps this busy
	starved    = 0.25 // machine idle below this: Ps the process cannot fill are cut
	slack      = 0.5  // ...when the process leaves more than this of its Ps unused
)

// Next is the P count for the coming interval, given n now, the ceiling and
// the last interval's sample; always within 1..ceiling. Pure, so every rule has
// a table test.
func Next(n, ceiling int, s Sample) int {
	next := n
	switch {
	case s.Busy >= growBusy*float64(n) && s.Idle >= growIdle:
		// Saturated and the machine has cores to give: take them all at once
		// (a burst should not wait one interval per core); shrink trims later.
		next = n + int(math.Min(float64(ceiling-n), math.Max(1, math.Floor(s.Idle))))
	case n > 1 && s.Busy < shrinkBusy*float64(n-1):
		next = int(math.Ceil(math.Max(s.Busy, 0) / shrinkBusy))
	case n > 1 && s.Idle < starved && s.Busy < float64(n)-slack:
		// Other processes hold the cores: our extra Ps only add wake-ups.
		next = n - 1
	}
	return min(ceiling, max(1, next))
}

// Sampler measures one interval; ok is false when it cannot (then nothing changes).
type Sampler interface {
	Sample() (s Sample, ok bool)
}

// Follow runs until ctx ends: every interval it samples and sets GOMAXPROCS
// through set (runtime.GOMAXPROCS in production), between 1 and ceiling. It
// starts at one P. onChange, when not nil, hears every change.
func Follow(ctx context.Context, ceiling int, every time.Duration, sm Sampler, set func(int), onChange func(from, to int, s Sample)) {
	n := 1
	set(n)
	t := time.NewTicker(every)
	defer t.Stop()
	sm.Sample() // the first interval starts now
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, ok := sm.Sample()
		if !ok {
			continue
		}
		if next := Next(n, ceiling, s); next != n {
			set(next)
			if onChange != nil {
				onChange(n, next, s)
			}
			n = next
		}
	}
}

// Start follows the load with the real sampler and runtime.GOMAXPROCS, up to
// what Go chose at start (the container's CPU limit, else every core). It
// returns false, changing nothing, where the machine's idle time cannot be read
// (not Linux) or where there is nothing to choose (one core).
func Start(ctx context.Context, onChange func(from, to int, s Sample)) bool {
	ceiling := runtime.GOMAXPROCS(0)
	sm, err := NewSampler()
	if err != nil || ceiling < 2 {
		return false
	}
	go Follow(ctx, ceiling, 100*time.Millisecond, sm, func(n int) { runtime.GOMAXPROCS(n) }, onChange)
	return true
}
