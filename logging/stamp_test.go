package logging

import (
	"math/rand/v2"
	"testing"
	"time"
)

// AppendTime writes what time.RFC3339Nano writes: fractions of every length
// (trailing zeros dropped, none at all on a whole second), zones east and west
// of UTC, the second before and after a cached one, a DST change.
func TestAppendTime(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600)
	}
	base := time.Date(2026, 12, 2, 0, 7, 52, 0, time.UTC)
	tests := []struct {
		name string
		t    time.Time
	}{
		{"whole second", base},
		{"nanoseconds", base.Add(123456789)},
		{"trailing zeros", base.Add(120 * time.Millisecond)},
		{"one nanosecond", base.Add(1)},
		{"microseconds", base.Add(496971 * time.Microsecond)},
		{"next second", base.Add(time.Second + 5)},
		{"same second, other zone", base.In(time.FixedZone("", 5*3600+1800))},
		{"west of UTC", base.In(time.FixedZone("", -7*3600))},
		{"before a DST change", time.Date(2026, 3, 8, 1, 59, 59, 999999999, ny)},
		{"after a DST change", time.Date(2026, 3, 8, 3, 0, 0, 1000, ny)},
		{"before 1970", time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 2; i++ { // first formatting the second, then from the cache
				if got, want := string(AppendTime([]byte("x"), tc.t)), "x"+tc.t.Format(time.RFC3339Nano); got != want {
					t.Fatalf("round %d: %q, want %q", i, got, want)
				}
			}
		})
	}
	for i := 0; i < 10000; i++ {
		tt := base.Add(time.Duration(rand.Int64N(int64(3 * time.Second))))
		if got, want := string(AppendTime(nil, tt)), tt.Format(time.RFC3339Nano); got != want {
			t.Fatalf("%q, want %q", got, want)
		}
	}
}

func BenchmarkAppendTime(b *testing.B) {
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = AppendTime(buf[:0], time.Now())
	}
}

func BenchmarkAppendFormat(b *testing.B) {
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = time.Now().AppendFormat(buf[:0], time.RFC3339Nano)
	}
}
