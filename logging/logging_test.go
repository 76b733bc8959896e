package logging

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int // writes that reached it
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestWriterBatchesAndFlushes(t *testing.T) {
	out := &lockedBuf{}
	w := NewWriter(out)
	for i := 0; i < 100; i++ {
		_, _ = w.Write([]byte("line\n"))
	}
	if out.String() != "" {
		t.Fatal("written through before a flush")
	}
	deadline := time.Now().Add(2 * time.Second)
	for strings.Count(out.String(), "line\n") != 100 {
		if time.Now().After(deadline) {
			t.Fatalf("not flushed within %s: %d lines", FlushEvery, strings.Count(out.String(), "line\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out.n != 1 {
		t.Fatalf("100 lines took %d writes", out.n)
	}
	_, _ = w.Write([]byte("last\n"))
	_ = w.Close()
	if !strings.HasSuffix(out.String(), "last\n") {
		t.Fatal("Close did not flush")
	}
	_, _ = w.Write([]byte("after\n"))
	if !strings.HasSuffix(out.String(), "after\n") {
		t.Fatal("write after Close lost")
	}
}

func TestWriterFlushesBigBursts(t *testing.T) {
	out := &lockedBuf{}
	w := NewWriter(out)
	defer w.Close()
	_, _ = w.Write(bytes.Repeat([]byte("x"), maxBuffered))
	if len(out.String()) != maxBuffered {
		t.Fatal("a full buffer was not flushed at once")
	}
}
