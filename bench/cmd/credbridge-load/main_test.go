package main

import (
	"net"
	"testing"
	"time"
)

// --await returns once the port accepts — a listener that opens late is
// waited for — and gives up with an error when nothing opens in time.
func TestAwaitAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := awaitAccept(addr, 100*time.Millisecond); err == nil {
		t.Fatal("awaitAccept returned nil with nothing listening")
	}
	go func() {
		time.Sleep(150 * time.Millisecond)
		if l, err := net.Listen("tcp", addr); err == nil {
			time.Sleep(2 * time.Second)
			l.Close()
		}
	}()
	start := time.Now()
	if err := awaitAccept(addr, 5*time.Second); err != nil {
		t.Fatalf("a listener opened after 150 ms: %v", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("returned after %s, before the listener opened", took)
	}
}
