package translate

import (
	"testing"
	"time"
)

// X-Timestamp truncates to five places, so its seconds are always the trans id's.
func TestAppendTimestamp(t *testing.T) {
	tests := []struct {
		us   int64
		want string
	}{
		{1763866800_000000, "1763866800.00000"},
		{1763866800_000009, "1763866800.00000"},
		{1763866800_000010, "1763866800.00001"},
		{1763866800_123456, "1763866800.12345"},
		{1763866800_999999, "1763866800.99999"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := string(AppendTimestamp(nil, time.UnixMicro(tc.us))); got != tc.want {
				t.Fatalf("AppendTimestamp(%d µs) = %s, want %s", tc.us, got, tc.want)
			}
		})
	}
}
