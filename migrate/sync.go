package migrate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credbridge/credbridge/translate"
)

// SyncOptions tune one `migrate sync` run.
type SyncOptions struct {
	// Prune deletes the keys only the secondary has (never without it).
	Prune bool
	// Workers are the users worked on at once (default 32); the Backend
	// bounds the calls in flight (Limited), this only keeps it busy while
	// journal writes wait for their fsync.
	Workers int
	// Attempts bounds the tries of one entry in this run (default 5). An entry
	// still failing stays journaled: the next run applies it first.
	Attempts int
	// Progress is told how many writes are settled of how many.
	Progress func(done, total int)
	// Journaled are the keys (KeyID) with entries still journaled after
	// Resume: their next write waits behind those, so sync leaves them.
	Journaled map[string]bool
	// Primary, when set, is read back after each create: the plan was read
	// before, and a client may have deleted or changed the key through the
	// bridge meanwhile — the mirror's write then found nothing on the
	// secondary, and the create would bring the old key back to life there.
	Primary Backend
}

// SyncResult is what a run did. Failed entries left the journal (each is also
// a divergence); Pending ones stay for the next run.
type SyncResult struct {
	Resumed, Created, Updated, Pruned int
	// Undone are keys created, then deleted again: the primary no longer had them.
	Undone  int
	Failed  []Failure
	Pending int
	// Waiting are the last reasons of writes left to retry (an entry may
	// appear once per pass that tried it).
	Waiting []Failure
	// Journaled are the keys whose entries Resume left in the journal.
	Journaled map[string]bool
}

func (o *SyncOptions) defaults() {
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
}

// Resume applies what an interrupted run left journaled, oldest first and
// each key's entries in order, before a new plan is read: the plan then sees
// their effect, and nothing is done twice.
func (m *Mirror) Resume(ctx context.Context, o SyncOptions) (SyncResult, error) {
	o.defaults()
	t := &tally{}
	stuck := map[string]bool{} // keys whose head entry failed its attempts this run
	for ctx.Err() == nil {
		entries, err := m.o.Journal.Next(ctx, 1024, 0)
		if err != nil {
			return t.r, err
		}
		var heads []Entry
		seen := map[string]bool{}
		for _, e := range entries {
			if !seen[e.KeyID] && !stuck[e.KeyID] {
				heads = append(heads, e)
			}
			seen[e.KeyID] = true
		}
		if len(heads) == 0 {
			break
		}
		parallel(len(heads), o.Workers, func(i int) {
			e := heads[i]
			out, why := m.settle(ctx, e, o.Attempts)
			t.count(e, out, why)
			if out == OutcomeRetry {
				t.mu.Lock()
				stuck[e.KeyID] = true
				t.mu.Unlock()
			}
			if e.Op == "create" && out == OutcomeDone {
				// journaled by an earlier run: the key may be gone from the primary since
				m.recheck(ctx, &o, t, translate.Cred{Access: e.Access, Status: statusOf(e.Status), Description: e.Desc})
			}
		})
	}
	r := t.r
	left, err := m.o.Journal.Next(ctx, 1<<20, 0)
	r.Pending, r.Journaled = len(left), map[string]bool{} // what is left, failed here or not reached
	for _, e := range left {
		r.Journaled[e.KeyID] = true
	}
	return r, errors.Join(err, ctx.Err())
}

// active: both dialects read no status as active.
func active(s translate.Status) bool { return s != translate.StatusInactive }

// tally is a run's result, counted from every worker.
type tally struct {
	mu sync.Mutex
	r  SyncResult
}

func (t *tally) count(e Entry, outcome, why string) {
	t.mu.Lock()
	t.r.count(e, outcome, why)
	t.mu.Unlock()
}

// Sync applies p through the journal: each write is journaled (durable, the
// secret sealed) before it is applied by the mirror's own apply, so a run cut
// short resumes where it stopped and a key applied twice changes nothing.
func (m *Mirror) Sync(ctx context.Context, p *Plan, o SyncOptions) (SyncResult, error) {
	o.defaults()
	var (
		t     = &tally{}
		done  atomic.Int64
		total = p.Actions(o.Prune)
	)
	step := func(op translate.Op, c translate.Cred) {
		out := m.write(ctx, &o, t, op, c)
		if o.Progress != nil {
			o.Progress(int(done.Add(1)), total)
		}
		if op == translate.OpCreate && out == OutcomeDone {
			m.recheck(ctx, &o, t, c)
		}
	}
	parallel(len(p.work), o.Workers, func(i int) {
		w := p.work[i]
		if o.Prune {
			for _, c := range w.prune {
				c.UserID = "" // a secondary id: the delete needs only the key
				step(translate.OpDelete, c)
			}
		}
		for _, c := range w.create {
			step(translate.OpCreate, c)
		}
		for _, c := range w.update {
			step(translate.OpUpdate, c)
		}
	})
	return t.r, ctx.Err()
}

// write journals one write of sync's and applies it.
func (m *Mirror) write(ctx context.Context, o *SyncOptions, t *tally, op translate.Op, c translate.Cred) string {
	e, ok := m.entry(ctx, Write{Op: op, Key: c})
	if ok && o.Journaled[e.KeyID] {
		return OutcomeRetry // counted in Resume's Pending: an older entry of the key waits in the journal
	}
	out, why := OutcomeFailed, "not replicable (see divergences)"
	if ok {
		out, why = m.journalAndSettle(ctx, e, o.Attempts)
	}
	t.count(e, out, why)
	return out
}

// recheck reads c back from the primary (o.Primary) after its create: gone
// there, it is deleted again; changed (status, description), it is updated.
// A primary that does not answer leaves it to verify.
func (m *Mirror) recheck(ctx context.Context, o *SyncOptions, t *tally, c translate.Cred) {
	if o.Primary == nil {
		return
	}
	cur, found, err := GetKey(ctx, o.Primary, c.Access)
	switch {
	case err != nil:
		return
	case !found:
		c.UserID = "" // the delete needs only the key
		if m.write(ctx, o, t, translate.OpDelete, c) == OutcomeDone {
			t.mu.Lock()
			t.r.Pruned--
			t.r.Created--
			t.r.Undone++
			t.mu.Unlock()
		}
	case active(cur.Status) != active(c.Status) || cur.Description != c.Description:
		cur.Secret, cur.UserID = "", c.UserID // an update never carries a secret
		cur.HasDescription = true             // none on the primary: none on the secondary
		m.write(ctx, o, t, translate.OpUpdate, cur)
	}
}

func (m *Mirror) journalAndSettle(ctx context.Context, e Entry, attempts int) (string, string) {
	id, err := m.o.Journal.Append(ctx, e)
	if err != nil {
		return OutcomeRetry, "journal: " + err.Error()
	}
	e.ID = id
	return m.settle(ctx, e, attempts)
}

// settle applies e up to attempts times, backing off between tries, and takes
// it off the journal unless it is still to be retried.
func (m *Mirror) settle(ctx context.Context, e Entry, attempts int) (outcome, why string) {
	if m.ownerOf(e) != m {
		return OutcomeRetry, "journaled for " + e.Target + ", which is not migration.secondary now"
	}
	wait := 200 * time.Millisecond
	for try := 1; ; try++ {
		outcome, why = m.attempt(ctx, e)
		if outcome != OutcomeRetry || try >= attempts || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		wait = min(2*wait, 5*time.Second)
	}
	if outcome == OutcomeRetry || ctx.Err() != nil {
		return OutcomeRetry, why
	}
	if err := m.o.Journal.Done(ctx, e); err != nil {
		return OutcomeRetry, "journal: " + err.Error()
	}
	return outcome, why
}

func (r *SyncResult) count(e Entry, outcome, why string) {
	switch {
	case outcome == OutcomeRetry:
		r.Pending++
		r.Waiting = append(r.Waiting, Failure{Op: e.Op, Access: e.Access, Why: why, At: time.Now().UTC().Format(time.RFC3339)})
	case outcome == OutcomeFailed:
		r.Failed = append(r.Failed, Failure{Op: e.Op, Access: e.Access, Why: why, At: time.Now().UTC().Format(time.RFC3339)})
	case e.Op == "create":
		r.Created++
	case e.Op == "update":
		r.Updated++
	case e.Op == "delete":
		r.Pruned++
	}
}

// Add folds a resumed run's counts into r.
func (r *SyncResult) Add(o SyncResult) {
	r.Resumed += o.Created + o.Updated + o.Pruned
	r.Undone += o.Undone
	r.Failed = append(r.Failed, o.Failed...)
	r.Waiting = append(r.Waiting, o.Waiting...)
	r.Pending += o.Pending
}

// parallel runs fn(0..n-1) on at most workers goroutines.
func parallel(n, workers int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(n, workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
