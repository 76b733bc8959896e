package app

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair (Linux): what a user's terminal is.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	var n uint32
	unlock := int32(0)
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// TestProgress: a bar on a terminal, one line per tenth elsewhere.
func TestProgress(t *testing.T) {
	master, slave := openPTY(t)
	got := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for { // until the slave side is closed (EIO)
			n, err := master.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.String()
	}()
	p := newProgress(slave, "syncing", 100)
	if p.bar == nil {
		t.Fatal("no bar on a terminal")
	}
	for i := 1; i <= 100; i++ {
		p.set(i, 100)
	}
	p.finish()
	slave.Close()
	var out string
	select {
	case out = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal side never ended")
	}
	// redrawn in place (\r) at most every 100 ms, cleared at the end for the summary
	if !strings.Contains(out, "syncing") || !strings.Contains(out, "/100,") || !strings.Contains(out, "| (") || !strings.HasSuffix(out, "\r") {
		t.Fatalf("the terminal shows %q; want a redrawn bar", out)
	}

	var plain bytes.Buffer
	p = newProgress(&plain, "syncing", 100)
	for i := 1; i <= 100; i++ {
		p.set(i, 100)
	}
	p.finish()
	if lines := strings.Count(plain.String(), "\n"); lines != 10 || strings.Contains(plain.String(), "\r") || !strings.HasSuffix(plain.String(), "syncing: 100/100 (100%)\n") {
		t.Fatalf("off a terminal: %q; want ten plain lines", plain.String())
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(null) {
		t.Fatal("/dev/null is a character device, not a terminal")
	}
}
