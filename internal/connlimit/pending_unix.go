//go:build unix

package connlimit

import (
	"net"
	"syscall"
)

// pending reports whether bytes wait unread on c's socket: a request the
// client has sent on a connection the server still counts as idle because its
// goroutine has not run yet (under load that can take seconds). Peeks without
// consuming or blocking, and without taking the read lock net/http holds.
func pending(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var n int
	var b [1]byte
	_ = rc.Control(func(fd uintptr) {
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}
