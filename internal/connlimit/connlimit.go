// Package connlimit caps the client connections an http.Server holds open.
//
// Why: every connection costs the bridge ~20–30 KB (net/http's buffers and its
// goroutine) for as long as it stays open, idle keep-alive ones included (up to
// the server's IdleTimeout). A storm of new connections — measured: 13,000 in five
// seconds from one client that dialed whenever it found none idle — took the
// bridge to 270 MB, past the 256 MiB limit of the gateway manifest. At the cap
// the listener stops accepting (new connections wait in the kernel's backlog),
// and, as nginx does when it runs out of connections, it closes idle keep-alive
// connections to make room — only ones idle for MinIdle (10 s) or more with no
// request waiting unread: closing a connection its client is about to reuse
// makes that request fail (Go's client retries only idempotent ones). Measured
// under a connection storm from a client starved of CPU: reclaiming connections
// idle for 1 s failed one request per connection reclaimed, because such a
// client notices the close seconds late. A storm therefore waits at the cap;
// what the reclaim guards against is idle connections hoarding every slot.
// Connections with a request in flight are never closed.
package connlimit

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Listener hands out at most max connections at a time; one more may wait,
// accepted, for a slot. Install ConnState as the server's ConnState hook so it
// knows which connections are idle.
type Listener struct {
	net.Listener
	slots chan struct{} // one token per open connection
	done  chan struct{} // closed by Close: a waiting Accept gives up

	mu sync.Mutex
	// idle holds idle connections, the longest idle at the front: that is the
	// one to close. Clients reuse their most recent connection first (Go's
	// Transport, browsers), so the oldest is the least likely to be in use
	// again right now — the close least likely to race a request on its way.
	// It is intrusive (links in conn) so marking a connection idle, once per
	// request, allocates nothing.
	head, tail *conn
	minIdle    time.Duration // how long a connection must have idled to be closed
	closed     sync.Once

	reclaimed, waited atomic.Int64
}

// MinIdle is how long a connection must have idled before it is closed to make
// room.
const MinIdle = 10 * time.Second

// New wraps ln; max must be at least 1.
func New(ln net.Listener, max int) *Listener {
	return &Listener{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{}), minIdle: MinIdle}
}

// Accept takes the next connection and waits for a slot for it. Only then — a
// client is really there — does a full listener look for an idle connection to
// close, so idle keep-alive connections live on while nobody needs their slot.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for first := true; ; first = false {
		select {
		case l.slots <- struct{}{}:
			return &conn{Conn: c, l: l}, nil
		default:
		}
		if first {
			l.waited.Add(1)
		}
		l.mu.Lock()
		old := l.takeIdle(time.Now())
		l.mu.Unlock()
		if old != nil {
			old.Close() // frees its slot for the loop to take
			continue
		}
		t := time.NewTimer(max(l.minIdle/10, time.Millisecond)) // look again: one may have idled long enough
		select {
		case l.slots <- struct{}{}:
			t.Stop()
			return &conn{Conn: c, l: l}, nil
		case <-l.done:
			t.Stop()
			c.Close()
			return nil, net.ErrClosed
		case <-t.C:
		}
	}
}

// Close stops accepting, a waiting Accept included.
func (l *Listener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Open is how many connections are open now.
func (l *Listener) Open() int { return len(l.slots) }

// Waited counts connections that found every slot taken.
func (l *Listener) Waited() int64 { return l.waited.Load() }

// Reclaimed counts idle connections closed to make room.
func (l *Listener) Reclaimed() int64 { return l.reclaimed.Load() }

// ConnState tracks idle connections for the server (http.Server.ConnState).
func (l *Listener) ConnState(nc net.Conn, s http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unidle(c)
	if s == http.StateIdle {
		c.idleSince, c.idle = time.Now(), true
		c.prev, c.next = l.tail, nil
		if l.tail != nil {
			l.tail.next = c
		} else {
			l.head = c
		}
		l.tail = c
	}
}

// unidle takes c off the idle list; l.mu is held.
func (l *Listener) unidle(c *conn) {
	if !c.idle {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next, c.idle = nil, nil, false
}

// takeIdle takes the longest idle connection off the list if it has idled
// minIdle and no request waits unread on it, and shuts its socket; the caller's
// Close frees its slot (Close takes l.mu, which is held here).
func (l *Listener) takeIdle(now time.Time) *conn {
	var c *conn
	for cand := l.head; cand != nil; cand = cand.next {
		if now.Sub(cand.idleSince) < l.minIdle {
			return nil // the rest idled for less
		} else if !pending(cand.Conn) {
			c = cand
			break
		}
	}
	if c == nil {
		return nil
	}
	l.unidle(c)
	l.reclaimed.Add(1)
	// Shut the socket now, under the lock, so that a request cannot turn it
	// active in between; the caller's Close then frees the slot.
	c.Conn.Close()
	return c
}

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
	// On the idle list while idle; guarded by l.mu.
	idle       bool
	prev, next *conn
	idleSince  time.Time
}

// Close frees the connection's slot, once however often it is called.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.unidle(c)
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return err
}
