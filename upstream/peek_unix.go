//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package upstream

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// peeker looks at a connected socket without blocking and without taking
// anything off it: MSG_PEEK|MSG_DONTWAIT, as go-redis's connCheck does. Its
// raw conn and callback are made once per connection, so a check allocates
// nothing; it costs one recvfrom.
type peeker struct {
	raw syscall.RawConn
	fn  func(fd uintptr) bool
	err error
	buf [1]byte
}

var errUnsolicited = errors.New("bytes waiting on an idle connection")

func (p *peeker) init(c net.Conn) {
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			p.raw, p.fn = raw, p.look
		}
	}
}

func (p *peeker) look(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		p.err = nil // nothing to read: open and quiet
	case err != nil:
		p.err = err // reset, or worse
	case n == 0:
		p.err = io.EOF // the server closed it
	default:
		// Bytes nobody asked for (a 408 sent before closing, a TLS alert): the
		// next answer would not line up with its request.
		p.err = errUnsolicited
	}
	return true
}

// alive: the socket is open and has nothing unread (true when it cannot tell).
func (p *peeker) alive() bool {
	if p.raw == nil {
		return true
	}
	if err := p.raw.Read(p.fn); err != nil {
		return false
	}
	return p.err == nil
}
