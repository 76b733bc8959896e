// Package connlimit caps the client connections an http.Server holds open.
//
// Why: every connection costs the bridge ~20–30 KB (net/http's buffers and its
// goroutine) for as long as it stays open, idle keep-alive ones included (up to
// the server's IdleTimeout). A storm of new connections — measured: 13,000 in five
// seconds from one client that dialed whenever it found none idle — took the
// bridge to 270 MB, past the 256 MiB limit of the gateway manifest. At the cap
// the listener stops accepting (new connections wait in the kernel's backlog),
// and, as nginx does when it runs out of connections, it closes idle keep-alive
// connections to make room. Connections with a request in flight are never closed.
package connlimit

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Listener hands out at most max connections at a time; one more may wait,
// accepted, for a slot. Install ConnState as the server's ConnState hook so it
// knows which connections are idle.
type Listener struct {
	net.Listener
	slots chan struct{} // one token per open connection
	done  chan struct{} // closed by Close: a waiting Accept gives up

	mu      sync.Mutex
	idle    map[*conn]struct{}
	waiting int // Accepts blocked on a free slot
	closed  sync.Once

	reclaimed atomic.Int64
}

// New wraps ln; max must be at least 1.
func New(ln net.Listener, max int) *Listener {
	return &Listener{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{}), idle: map[*conn]struct{}{}}
}

// Accept takes the next connection and waits for a slot for it. Only then — a
// client is really there — does a full listener close an idle connection to free
// one, so idle keep-alive connections live on while nobody needs their slot.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
		return &conn{Conn: c, l: l}, nil
	default:
	}
	l.mu.Lock()
	l.waiting++
	l.closeOneIdle()
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.waiting--
		l.mu.Unlock()
	}()
	select {
	case l.slots <- struct{}{}:
		return &conn{Conn: c, l: l}, nil
	case <-l.done:
		c.Close()
		return nil, net.ErrClosed
	}
}

// Close stops accepting, a waiting Accept included.
func (l *Listener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Open is how many connections are open now.
func (l *Listener) Open() int { return len(l.slots) }

// Reclaimed counts idle connections closed to make room.
func (l *Listener) Reclaimed() int64 { return l.reclaimed.Load() }

// ConnState tracks idle connections for the server (http.Server.ConnState).
// A connection that turns idle while an Accept waits is closed at once.
func (l *Listener) ConnState(nc net.Conn, s http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateIdle:
		if l.waiting > 0 {
			l.reclaimed.Add(1)
			go c.Close() // not under the lock: Close takes it
			return
		}
		l.idle[c] = struct{}{}
	default:
		delete(l.idle, c)
	}
}

// closeOneIdle closes some idle connection; l.mu is held.
func (l *Listener) closeOneIdle() {
	for c := range l.idle {
		delete(l.idle, c)
		l.reclaimed.Add(1)
		go c.Close()
		return
	}
}

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

// Close frees the connection's slot, once however often it is called.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return err
}
