// Package logging holds the bridge's log output: a buffered writer so a log
// line costs a memory copy rather than a write(2), and the JSON slog handler on
// top of it. Lines reach the file within FlushEvery, and at Close.
package logging

import (
	"io"
	"log/slog"
	"sync"
	"time"
)

// FlushEvery bounds how long a line waits in memory.
const FlushEvery = 200 * time.Millisecond

// maxBuffered forces a synchronous flush: a burst never holds more than this.
const maxBuffered = 256 << 10

// Writer buffers writes to an underlying writer.
type Writer struct {
	mu     sync.Mutex
	out    io.Writer
	buf    []byte
	stop   chan struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewWriter starts a buffered writer over out.
func NewWriter(out io.Writer) *Writer {
	w := &Writer{out: out, buf: make([]byte, 0, 64<<10), stop: make(chan struct{})}
	w.wg.Add(1)
	go w.loop()
	return w
}

func (w *Writer) loop() {
	defer w.wg.Done()
	t := time.NewTicker(FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			w.Flush()
		case <-w.stop:
			return
		}
	}
}

// Write copies p into the buffer (never fails short). After Close it writes
// through.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= maxBuffered {
		w.flushLocked()
	}
	return len(p), nil
}

// Flush writes out what is buffered.
func (w *Writer) Flush() {
	w.mu.Lock()
	w.flushLocked()
	w.mu.Unlock()
}

func (w *Writer) flushLocked() {
	if len(w.buf) > 0 {
		_, _ = w.out.Write(w.buf)
		w.buf = w.buf[:0]
	}
}

// Close flushes and stops the background flusher; later writes go straight out.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.flushLocked()
	w.mu.Unlock()
	close(w.stop)
	w.wg.Wait()
	return nil
}

// New is the bridge's logger: JSON lines at level ("debug".."error") into w.
func New(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return NewLeveled(w, l)
}

// NewLeveled is New with a level that may change while it runs (a
// *slog.LevelVar that a reload sets).
func NewLeveled(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
