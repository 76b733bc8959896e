package upstream

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// A backend whose accept queue is full (it listens, never accepts): the
// kernel drops further SYNs, so dials toward it hang until their own timeout.
// New still returns after WarmWait, and the dials left running do not stop a
// later call from failing in its own time.
func TestWarmWaitIsBounded(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // a queue of one
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
	for i := 0; i < 4; i++ { // fill the queue; later connects hang
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		defer c.Close()
	}
	start := time.Now()
	c := warmClient(t, "http://"+addr, 8, 8, time.Minute)
	if took := time.Since(start); took > WarmWait+300*time.Millisecond || c.warmed == 8 {
		t.Fatalf("New took %s and warmed %d toward a backend that never accepts", took, c.warmed)
	}
}
