package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
)

// Outcomes of one apply (credbridge_migration_applied_total{outcome}).
const (
	OutcomeDone   = "done"
	OutcomeRetry  = "retry"
	OutcomeFailed = "failed"
)

// retries remembers, per entry, how often it failed and when to try again.
// Waits double from 100 ms up to MaxBackoff; an entry is never dropped for age.
type retries struct {
	mu sync.Mutex
	m  map[string]retryState
}

type retryState struct {
	attempts  int
	notBefore time.Time
	lastErr   string
}

func (r *retries) due(id string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !now.Before(r.m[id].notBefore)
}

func (r *retries) failed(id string, max time.Duration, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.m[id]
	s.attempts++
	wait := 100 * time.Millisecond << min(s.attempts-1, 20)
	if wait > max || wait <= 0 {
		wait = max
	}
	s.notBefore, s.lastErr = time.Now().Add(wait), why
	r.m[id] = s
}

func (r *retries) forget(id string) {
	r.mu.Lock()
	delete(r.m, id)
	r.mu.Unlock()
}

// next is the earliest time an entry waiting for a retry becomes due (zero: none).
func (r *retries) next() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var t time.Time
	for _, s := range r.m {
		if t.IsZero() || s.notBefore.Before(t) {
			t = s.notBefore
		}
	}
	return t
}

// workLoop drains the journal: each pass takes the oldest entries, applies the
// first one of each key (if it is its key's head in the journal and not waiting
// for a retry) on up to Workers goroutines, and sleeps when nothing was due.
func (m *Mirror) workLoop() {
	defer m.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-m.stop; cancel() }()
	sem := make(chan struct{}, m.o.Workers)
	for ctx.Err() == nil {
		entries, err := m.o.Journal.Next(ctx, 256, 500*time.Millisecond)
		if err != nil {
			m.health.journalErr(err)
			m.pause(ctx, time.Second)
			continue
		}
		m.health.journalErr(nil)
		var wg sync.WaitGroup
		started := 0
		now := time.Now()
		seen := make(map[string]bool, len(entries))
		for _, e := range entries {
			if seen[e.KeyID] {
				continue // an older entry of this key comes first
			}
			seen[e.KeyID] = true
			if !m.retry.due(e.ID, now) {
				continue
			}
			if head, err := m.o.Journal.IsHead(ctx, e); err != nil || !head {
				continue
			}
			started++
			wg.Add(1)
			sem <- struct{}{}
			go func(e Entry) {
				defer func() { <-sem; wg.Done() }()
				m.applyOne(ctx, e)
			}(e)
		}
		wg.Wait()
		if started == 0 && len(entries) > 0 {
			m.pause(ctx, time.Until(m.retry.next()))
		}
	}
}

// pause waits up to d (at most a second, at least a millisecond), or less when
// a write arrives.
func (m *Mirror) pause(ctx context.Context, d time.Duration) {
	d = min(max(d, time.Millisecond), time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-m.wake:
	case <-ctx.Done():
	}
}

// applyOne applies e and settles it: done and failed entries leave the
// journal, retried ones wait.
func (m *Mirror) applyOne(ctx context.Context, e Entry) {
	owner := m.ownerOf(e)
	if owner == nil {
		// Journaled for a secondary this process was never told of (a restart
		// after the sides were swapped): applying it to the current one would
		// write to the wrong cloud. It waits, and max_lag reports it.
		m.retry.failed(e.ID, m.o.MaxBackoff, "journaled for "+e.Target+", which is not migration.secondary now")
		return
	}
	outcome, why := owner.attempt(ctx, e)
	if ctx.Err() != nil {
		return // stopping: the entry stays for the next start
	}
	if outcome == OutcomeRetry {
		m.retry.failed(e.ID, m.o.MaxBackoff, why)
		return
	}
	if err := m.o.Journal.Done(ctx, e); err != nil {
		m.retry.failed(e.ID, m.o.MaxBackoff, "journal: "+err.Error())
		return
	}
	m.retry.forget(e.ID)
	m.tokens.Delete(e.ID)
}

// ownerOf is the mirror whose secondary e was journaled for: this one, one a
// reload replaced, or nil when no mirror of this process knows its target.
func (m *Mirror) ownerOf(e Entry) *Mirror {
	if e.Target == "" || e.Target == m.target {
		return m
	}
	return m.retired[e.Target]
}

// attempt applies e once, in a span of its own linked to the request that
// caused it, and counts and logs the outcome; the worker and sync both apply
// through it.
func (m *Mirror) attempt(ctx context.Context, e Entry) (outcome, why string) {
	sp := m.span(m.linkOf(e.Trace), "migration apply "+e.Op)
	sp.SetAttributes(attribute.String("migration.op", e.Op), attribute.String("migration.secondary", m.side.String()))
	outcome, why = m.apply(ctx, e)
	if outcome == OutcomeRetry && e.Op == "create" && m.deletedLater(ctx, e) {
		outcome, why = OutcomeDone, "" // the key's later delete is the target state
	}
	sp.SetAttributes(attribute.String("migration.outcome", outcome))
	if outcome != OutcomeDone {
		sp.SetStatus(codes.Error, why)
	}
	sp.End()
	if ctx.Err() != nil {
		return OutcomeRetry, "stopped"
	}
	m.m.apply(ctx, e.Op, outcome)
	m.health.applied(outcome, why)
	switch outcome {
	case OutcomeRetry:
		m.log.Warn("migration: apply will be retried", "op", e.Op, "access", e.Access, "why", why)
	case OutcomeFailed:
		m.log.Error("migration: apply failed", "op", e.Op, "access", e.Access, "why", why)
		m.health.failure(e, why)
	}
	return outcome, why
}

// deletedLater: a later journal entry deletes e's key.
func (m *Mirror) deletedLater(ctx context.Context, e Entry) bool {
	gone, err := m.o.Journal.Deleted(ctx, e)
	return err == nil && gone
}

// statsLoop reads the journal's backlog once a second for the gauges,
// /migration and /readyz.
func (m *Mirror) statsLoop() {
	defer m.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		m.refreshStats()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

func (m *Mirror) refreshStats() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, oldest, err := m.o.Journal.Stats(ctx)
	m.health.journalErr(err)
	if err == nil {
		m.m.setStats(n, oldest)
	}
}

func metricKind(kind string) metric.AddOption {
	return metric.WithAttributes(attribute.String("kind", kind))
}

func randID(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
