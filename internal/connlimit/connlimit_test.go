package connlimit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server serves h on a loopback listener capped at max; peak reports the most
// client sockets open at once, sampled whenever the server takes a new one. (A
// connection closed to make room frees its slot when its socket closes; its
// goroutine may still be winding down when the next one starts.)
func server(t *testing.T, max int, h http.HandlerFunc) (url string, l *Listener, srv *http.Server, peak func() int64, served chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l = New(ln, max)
	var top atomic.Int64
	srv = &http.Server{Handler: h, ConnState: func(c net.Conn, s http.ConnState) {
		if n := int64(l.Open()); s == http.StateNew && n > top.Load() {
			top.Store(n)
		}
		l.ConnState(c, s)
	}}
	served = make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), l, srv, top.Load, served
}

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return errors.New(resp.Status)
	}
	return err
}

func client() *http.Client {
	return &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
}

// Two idle keep-alive connections fill a cap of two; a third client is served
// because one idle connection is closed for it, and the server never holds three.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	url, l, _, peak, _ := server(t, 2, func(w http.ResponseWriter, r *http.Request) {})
	a, b, c := client(), client(), client()
	for _, cl := range []*http.Client{a, b} {
		if err := get(cl, url); err != nil {
			t.Fatal(err)
		}
	}
	if l.Open() != 2 {
		t.Fatalf("%d connections open after two clients, want 2", l.Open())
	}
	if err := get(c, url); err != nil {
		t.Fatalf("third client at the cap: %v", err)
	}
	if l.Reclaimed() < 1 {
		t.Fatalf("third client served with %d idle connections reclaimed", l.Reclaimed())
	}
	// The closed idle connection's owner reconnects (GET is retried on a
	// connection the server closed while idle).
	for _, cl := range []*http.Client{a, b} {
		if err := get(cl, url); err != nil {
			t.Fatal(err)
		}
	}
	if p := peak(); p > 2 {
		t.Fatalf("server held %d connections at once, cap 2", p)
	}
}

// A connection with a request in flight is never closed to make room: the
// waiting client is served once that request has finished.
func TestActiveConnectionsAreKept(t *testing.T) {
	release := make(chan struct{})
	var first sync.Once
	url, l, _, peak, _ := server(t, 1, func(w http.ResponseWriter, r *http.Request) {
		first.Do(func() { <-release })
	})
	slow := make(chan error, 1)
	go func() { slow <- get(client(), url) }()
	time.Sleep(100 * time.Millisecond) // the slow request holds the only slot
	waiting := make(chan error, 1)
	go func() { waiting <- get(client(), url) }()
	select {
	case err := <-waiting:
		t.Fatalf("served past the cap while the only connection was busy (%v)", err)
	case err := <-slow:
		t.Fatalf("the busy connection was cut: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if n := l.Reclaimed(); n != 0 {
		t.Fatalf("%d connections reclaimed while the only one was busy", n)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	select {
	case err := <-waiting:
		if err != nil {
			t.Fatalf("waiting client: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting client was never served")
	}
	if p := peak(); p > 1 {
		t.Fatalf("server held %d connections at once, cap 1", p)
	}
	if n := l.Reclaimed(); n != 1 {
		t.Fatalf("%d connections reclaimed; want 1, the busy one once it turned idle", n)
	}
}

// Shutting down while Accept waits for a slot ends Serve.
func TestShutdownWhileFull(t *testing.T) {
	release := make(chan struct{})
	url, _, srv, _, served := server(t, 1, func(w http.ResponseWriter, r *http.Request) { <-release })
	go func() { _ = get(client(), url) }()
	time.Sleep(100 * time.Millisecond)
	go func() { _ = get(client(), url) }() // Accept now waits for the slot
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { time.Sleep(200 * time.Millisecond); close(release) }()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still waiting for a slot after shutdown")
	}
}
