package logging

import (
	"sync/atomic"
	"time"
)

// stamp is one second's RFC 3339 text, up to the seconds, and its zone.
type stamp struct {
	sec        int64
	loc        *time.Location
	head, zone []byte
}

var lastStamp atomic.Pointer[stamp]

// AppendTime appends t as time.RFC3339Nano does (slog's "time" field): the
// fraction without trailing zeros, no dot when it is zero. The date, clock
// and zone are formatted once per second and location and copied after
// that; only the fraction is written per call. time.Time.AppendFormat took
// ~0.8 µs of every access line on the benchmark machine.
func AppendTime(b []byte, t time.Time) []byte {
	s := lastStamp.Load()
	if s == nil || s.sec != t.Unix() || s.loc != t.Location() {
		// An instant's zone offset is fixed (zone changes fall on whole
		// seconds), so a second's head and zone hold for every t within it.
		s = &stamp{sec: t.Unix(), loc: t.Location(),
			head: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		lastStamp.Store(s)
	}
	b = append(b, s.head...)
	if ns := t.Nanosecond(); ns != 0 {
		var f [10]byte
		f[0] = '.'
		for i := 9; i >= 1; i-- {
			f[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for f[n-1] == '0' {
			n--
		}
		b = append(b, f[:n]...)
	}
	return append(b, s.zone...)
}
