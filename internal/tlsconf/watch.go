package tlsconf

import (
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CheckEvery is how often a Watched looks at its files' modification times:
// the cost is a stat per file per interval, not per handshake.
const CheckEvery = time.Second

// Watched is a value built from files, rebuilt when any of them changes (its
// modification time or size). A rebuild that fails — a rotation caught half
// way, the certificate written and the key not yet — keeps the old value and
// is retried at the next check, so a bad rotation never takes the listener down.
type Watched[T any] struct {
	paths   []string
	build   func() (T, error)
	onError func(error)

	cur     atomic.Pointer[T]
	checked atomic.Int64 // unix nanoseconds of the last look at the files
	mu      sync.Mutex   // one rebuild at a time
	stamps  []stamp
	failed  []stamp // the stamps whose rebuild failed: report once, not every second
	now     func() time.Time
}

type stamp struct {
	mod  time.Time
	size int64
}

// NewWatched builds the first value (its error is returned) and watches paths.
// onError (may be nil) hears of a failed rebuild once per change of the files.
func NewWatched[T any](build func() (T, error), onError func(error), paths ...string) (*Watched[T], error) {
	w := &Watched[T]{paths: paths, build: build, onError: onError, now: time.Now}
	w.stamps = w.stat()
	v, err := build()
	if err != nil {
		return nil, err
	}
	w.cur.Store(&v)
	w.checked.Store(w.now().UnixNano())
	return w, nil
}

// Get is the current value, rebuilt first if a file changed since the last
// look (at most one look per CheckEvery).
func (w *Watched[T]) Get() T {
	if now := w.now().UnixNano(); now-w.checked.Load() >= int64(CheckEvery) {
		w.refresh(now, false)
	}
	return *w.cur.Load()
}

// Reload rebuilds now, changed or not (SIGHUP: no waiting for the next look,
// and files copied with their old times are read too). On failure the old
// value stays and the error is returned.
func (w *Watched[T]) Reload() error { return w.refresh(w.now().UnixNano(), true) }

func (w *Watched[T]) refresh(now int64, force bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !force && now-w.checked.Load() < int64(CheckEvery) {
		return nil // another caller looked meanwhile
	}
	w.checked.Store(now)
	st := w.stat()
	if !force && (slices.Equal(st, w.stamps) || slices.Equal(st, w.failed)) {
		return nil
	}
	v, err := w.build()
	if err != nil {
		if !slices.Equal(st, w.failed) && w.onError != nil {
			w.onError(err)
		}
		w.failed = st
		return err
	}
	w.cur.Store(&v)
	w.stamps, w.failed = st, nil
	return nil
}

func (w *Watched[T]) stat() []stamp {
	out := make([]stamp, len(w.paths))
	for i, p := range w.paths {
		if fi, err := os.Stat(p); err == nil {
			out[i] = stamp{fi.ModTime(), fi.Size()}
		}
	}
	return out
}
