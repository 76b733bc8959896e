package connlimit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server serves h on a loopback listener capped at max; peak reports the most
// client sockets open at once, sampled whenever the server takes a new one. (A
// connection closed to make room frees its slot when its socket closes; its
// goroutine may still be winding down when the next one starts.)
func server(t *testing.T, max int, minIdle time.Duration, h http.HandlerFunc) (url string, l *Listener, srv *http.Server, peak func() int64, served chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l = New(ln, max)
	l.minIdle = minIdle
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
	url, l, _, peak, _ := server(t, 2, 0, func(w http.ResponseWriter, r *http.Request) {})
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
	if l.Reclaimed() < 1 || l.Waited() != 1 {
		t.Fatalf("third client served with %d waits, %d idle connections reclaimed; want 1 and at least 1", l.Waited(), l.Reclaimed())
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
	url, l, _, peak, _ := server(t, 1, 50*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
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
		t.Fatalf("%d connections reclaimed; want 1, the busy one once it had idled", n)
	}
}

// Shutting down while Accept waits for a slot ends Serve.
func TestShutdownWhileFull(t *testing.T) {
	release := make(chan struct{})
	url, _, srv, _, served := server(t, 1, time.Second, func(w http.ResponseWriter, r *http.Request) { <-release })
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

// The connection idle longest is the one closed: clients reuse their most
// recent connection first, so it is the least likely to be in use again.
func TestLongestIdleGoesFirst(t *testing.T) {
	url, l, _, _, _ := server(t, 2, 0, func(w http.ResponseWriter, r *http.Request) {})
	idleNow := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		n := 0
		for c := l.head; c != nil; c = c.next {
			n++
		}
		return n
	}
	settle := func(n int) { // the server marks a connection idle just after the client has its answer
		for deadline := time.Now().Add(5 * time.Second); idleNow() != n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	counted := func(n *atomic.Int64) *http.Client {
		d := &net.Dialer{}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, nw, a string) (net.Conn, error) {
			n.Add(1)
			return d.DialContext(ctx, nw, a)
		}}}
	}
	var da, db atomic.Int64
	a, b := counted(&da), counted(&db)
	for i, cl := range []*http.Client{a, b} { // a idle longest, then b
		if err := get(cl, url); err != nil {
			t.Fatal(err)
		}
		settle(i + 1)
	}
	if err := get(client(), url); err != nil { // the third needs room
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the closed connection's client notices
	if err := get(b, url); err != nil {
		t.Fatal(err)
	}
	if da.Load() != 1 || db.Load() != 1 {
		t.Fatalf("dials: a %d, b %d; want b's connection kept (it was idle the shorter time)", da.Load(), db.Load())
	}
}

// A connection idle for less than minIdle is not closed — its client may be
// about to reuse it; the newcomer waits until the oldest one has idled long enough.
func TestFreshIdleConnectionsAreKept(t *testing.T) {
	const minIdle = 400 * time.Millisecond
	url, l, _, _, _ := server(t, 1, minIdle, func(w http.ResponseWriter, r *http.Request) {})
	if err := get(client(), url); err != nil {
		t.Fatal(err)
	}
	idled := time.Now()
	if err := get(client(), url); err != nil { // waits for the first to age
		t.Fatal(err)
	}
	if waited := time.Since(idled); waited < minIdle-50*time.Millisecond {
		t.Fatalf("a connection idle for %s was closed; minimum %s", waited, minIdle)
	}
	if l.Reclaimed() != 1 {
		t.Fatalf("%d reclaimed, want 1", l.Reclaimed())
	}
}

// pending sees bytes waiting on a socket without consuming them.
func TestPending(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if pending(server) {
		t.Fatal("pending on a quiet socket")
	}
	if _, err := client.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !pending(server) {
		if time.Now().After(deadline) {
			t.Fatal("bytes sent were never seen as pending")
		}
		time.Sleep(time.Millisecond)
	}
	b := make([]byte, 64)
	if n, err := server.Read(b); err != nil || string(b[:n]) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("the peek consumed bytes: read %q, %v", b[:n], err)
	}
	if pending(server) {
		t.Fatal("pending after everything was read")
	}
}

// The hand-linked idle list keeps idle order through any mix of state changes.
func TestIdleListOrder(t *testing.T) {
	l := New(nil, 4)
	c := []*conn{{l: l}, {l: l}, {l: l}}
	order := func() (ids []int) {
		for x := l.head; x != nil; x = x.next {
			for i := range c {
				if c[i] == x {
					ids = append(ids, i)
				}
			}
		}
		return ids
	}
	steps := []struct {
		conn int
		s    http.ConnState
		want []int
	}{
		{0, http.StateIdle, []int{0}},
		{1, http.StateIdle, []int{0, 1}},
		{2, http.StateIdle, []int{0, 1, 2}},
		{1, http.StateActive, []int{0, 2}}, // from the middle
		{0, http.StateActive, []int{2}},    // from the head
		{1, http.StateIdle, []int{2, 1}},   // back at the tail
		{1, http.StateClosed, []int{2}},    // from the tail
		{2, http.StateIdle, []int{2}},      // idle again: moves to the tail, once
		{2, http.StateActive, nil},         // the last one
		{0, http.StateClosed, nil},         // not idle: nothing to take off
	}
	for i, st := range steps {
		l.ConnState(c[st.conn], st.s)
		if got := order(); !slices.Equal(got, st.want) {
			t.Fatalf("step %d (%d %v): idle order %v, want %v", i, st.conn, st.s, got, st.want)
		}
		if (l.head == nil) != (l.tail == nil) || (l.tail != nil && l.tail.next != nil) || (l.head != nil && l.head.prev != nil) {
			t.Fatalf("step %d: head/tail links broken", i)
		}
	}
}
