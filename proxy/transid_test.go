package proxy

import (
	"strings"
	"testing"
	"time"
)

// A made-up trans id is random in all 21 digits (the last five were once
// always zero: a shift past 64 bits), and a request id's hex prefix is kept.
func TestAppendTransID(t *testing.T) {
	now := time.Unix(0x6921d2a0, 0)
	if got := string(appendTransID(nil, "0123456789abcdef0123456789abcdef", now)); got != "tx0123456789abcdef01234-006921d2a0" {
		t.Fatalf("from a hex request id: %s", got)
	}
	zeroTail := 0
	for range 20 {
		got := string(appendTransID(nil, "client-chosen-id", now))
		if len(got) != 34 || !strings.HasPrefix(got, "tx") || got[23] != '-' || !isHex(got[2:23]) || got[24:] != "006921d2a0" {
			t.Fatalf("made up: %s", got)
		}
		if got[18:23] == "00000" {
			zeroTail++
		}
	}
	if zeroTail == 20 {
		t.Fatal("the last five random digits are always zero")
	}
}
