package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Config is the audit section of the config file.
type Config struct {
	// File receives the trail as JSON lines: "" (default) turns it off, "-"
	// is stdout, anything else a path opened for append (created 0600).
	// Risk: the trail names users, projects, addresses and access key ids —
	// never tokens or secrets — so keep the file as private as the logs; a
	// path on a full or slow disk slows the requests that write to it (each
	// waits for its line to reach the buffer, at most one write of 64 KiB).
	File string `yaml:"file"`
}

// Validate refuses a path whose directory does not exist, naming the key.
func (c Config) Validate() error {
	if c.File == "" || c.File == "-" {
		return nil
	}
	dir := filepath.Dir(c.File)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("audit.file: directory %q does not exist", dir)
	}
	if fi, err := os.Stat(c.File); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("audit.file: %q is not a regular file", c.File)
	}
	return nil
}

// FlushInterval is the longest an event waits in the buffer.
const FlushInterval = time.Second

const bufSize = 64 << 10

// Writer buffers events and writes them out at least every FlushInterval and
// on Close. A nil *Writer is valid and discards events (audit off).
type Writer struct {
	mu      sync.Mutex
	buf     *bufio.Writer
	scratch []byte
	err     error // the first write error, reported by Flush and Close
	closed  bool
	file    io.Closer // nil for stdout or a caller's writer
	stop    chan struct{}
	done    chan struct{}
}

// Open starts the writer c asks for: nil, nil when c.File is "".
func Open(c Config) (*Writer, error) {
	switch c.File {
	case "":
		return nil, nil
	case "-":
		return NewWriter(os.Stdout, FlushInterval), nil
	}
	f, err := os.OpenFile(c.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit.file: %v", err)
	}
	w := NewWriter(f, FlushInterval)
	w.file = f
	return w, nil
}

// NewWriter writes events to out, flushing every interval.
func NewWriter(out io.Writer, interval time.Duration) *Writer {
	w := &Writer{buf: bufio.NewWriterSize(out, bufSize), scratch: make([]byte, 0, 512),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.flusher(interval)
	return w
}

func (w *Writer) flusher(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			_ = w.Flush()
		}
	}
}

// Log appends e to the buffer. It never fails the request: a write error is
// kept for Flush and Close to report. A line is written whole or not at all
// (one Write of the encoded event under the lock).
func (w *Writer) Log(e Event) {
	if w == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.scratch = e.AppendJSON(w.scratch[:0])
	if _, err := w.buf.Write(w.scratch); err != nil && w.err == nil {
		w.err = err
	}
	if cap(w.scratch) > 64<<10 { // one huge event must not pin its buffer
		w.scratch = make([]byte, 0, 512)
	}
}

// Flush writes out what is buffered.
func (w *Writer) Flush() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Buffered() > 0 {
		if err := w.buf.Flush(); err != nil && w.err == nil {
			w.err = err
		}
	}
	return w.err
}

// Close flushes, stops the flusher and closes the file; later events are
// dropped. It returns the first error the writer met.
func (w *Writer) Close() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.err
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	err := w.Flush()
	if w.file != nil {
		err = errors.Join(err, w.file.Close())
	}
	return err
}
