package procs

import (
	"context"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	tests := []struct {
		name       string
		n, ceiling int
		s          Sample
		want       int
	}{
		// The side-by-side benchmark on two shared cores: the bridge fills its one P,
		// wrk and nginx take most of the rest (0.36 cores idle measured).
		{"saturated, machine busy: stay", 1, 2, Sample{Busy: 0.95, Idle: 0.36}, 1},
		{"saturated, a core idle: grow", 1, 2, Sample{Busy: 0.97, Idle: 0.9}, 2},
		{"saturated, many cores idle: take them at once", 1, 16, Sample{Busy: 1.0, Idle: 12.3}, 13},
		{"growth stops at max", 6, 8, Sample{Busy: 6, Idle: 5}, 8},
		{"at max: stay", 8, 8, Sample{Busy: 8, Idle: 3}, 8},
		{"light load on one P: stay", 1, 8, Sample{Busy: 0.3, Idle: 7}, 1},
		{"in the band between shrink and grow: stay", 3, 8, Sample{Busy: 2, Idle: 5}, 3},
		{"overshoot trimmed to what stays 70% busy", 13, 16, Sample{Busy: 2, Idle: 11}, 3},
		{"idle bridge: back to one", 8, 8, Sample{Busy: 0.01, Idle: 7.9}, 1},
		{"others hold the CPU: give one back", 2, 2, Sample{Busy: 1.3, Idle: 0.05}, 1},
		{"dedicated and saturated: keep every P", 2, 2, Sample{Busy: 1.9, Idle: 0.05}, 2},
		{"one P is never cut", 1, 2, Sample{Busy: 0.2, Idle: 0}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Next(tc.n, tc.ceiling, tc.s); got != tc.want {
				t.Fatalf("Next(%d, %d, %+v) = %d, want %d", tc.n, tc.ceiling, tc.s, got, tc.want)
			}
		})
	}
}

// Whatever the sample, the count stays within 1..max.
func FuzzNext(f *testing.F) {
	f.Add(1, 2, 0.95, 0.36)
	f.Add(13, 16, 2.0, 11.0)
	f.Add(1, 8, math.Inf(1), math.Inf(1))
	f.Add(4, 8, math.Inf(-1), math.NaN())
	f.Fuzz(func(t *testing.T, n, ceiling int, busy, idle float64) {
		if ceiling < 1 || ceiling > 4096 || n < 1 || n > ceiling {
			return
		}
		if got := Next(n, ceiling, Sample{Busy: busy, Idle: idle}); got < 1 || got > ceiling {
			t.Fatalf("Next(%d, %d, %v, %v) = %d", n, ceiling, busy, idle, got)
		}
	})
}

type script struct {
	mu      sync.Mutex
	samples []Sample
}

func (s *script) Sample() (Sample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return Sample{}, false
	}
	v := s.samples[0]
	s.samples = s.samples[1:]
	return v, true
}

func TestFollowStartsAtOneAndFollowsTheSamples(t *testing.T) {
	sm := &script{samples: []Sample{
		{},                     // consumed at start: the first interval begins
		{Busy: 1, Idle: 3},     // 1 -> 4
		{Busy: 3.5, Idle: 0.5}, // band: stays 4
		{Busy: 0.5, Idle: 3.5}, // 4 -> 1
	}}
	var mu sync.Mutex
	var set, changes []int
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(ctx, 4, time.Millisecond, sm, func(n int) { mu.Lock(); set = append(set, n); mu.Unlock() },
			func(from, to int, _ Sample) { mu.Lock(); changes = append(changes, from, to); mu.Unlock() })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sm.mu.Lock()
		left := len(sm.samples)
		sm.mu.Unlock()
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the last sample's decision
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(set, []int{1, 4, 1}) || !slices.Equal(changes, []int{1, 4, 4, 1}) {
		t.Fatalf("set %v, changes %v; want set [1 4 1], changes [1 4 4 1]", set, changes)
	}
}

func TestParseStat(t *testing.T) {
	golden, err := os.ReadFile("testdata/proc_stat")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		in                string
		idle, total, cpus int
		ok                bool
	}{
		// idle = idle + iowait; total = user..steal (guest is inside user already)
		{"a real /proc/stat", string(golden), 3279433 + 1172, 42010 + 31 + 21322 + 3279433 + 1172 + 0 + 2211 + 880, 2, true},
		{"no cpuN lines", "cpu  1 2 3 4 5 6 7 8 0 0\n", 0, 0, 0, false},
		{"no aggregate line", "cpu0 1 2 3 4 5 6 7 8 0 0\n", 0, 0, 0, false},
		{"too few fields", "cpu  1 2 3 4\ncpu0 1 2 3 4\n", 0, 0, 0, false},
		{"not a number", "cpu  1 2 x 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n", 0, 0, 0, false},
		{"two aggregate lines", "cpu  1 2 3 4 5 6 7 8\ncpu  1 2 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n", 0, 0, 0, false},
		{"empty", "", 0, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idle, total, cpus, ok := ParseStat([]byte(tc.in))
			if ok != tc.ok || (ok && (idle != uint64(tc.idle) || total != uint64(tc.total) || cpus != tc.cpus)) {
				t.Fatalf("got %d %d %d %v, want %d %d %d %v", idle, total, cpus, ok, tc.idle, tc.total, tc.cpus, tc.ok)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	if b, err := os.ReadFile("testdata/proc_stat"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("cpu  1 2 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		idle, total, cpus, ok := ParseStat(b)
		if ok && (cpus < 1 || idle > total) {
			t.Fatalf("ok with idle %d total %d cpus %d", idle, total, cpus)
		}
	})
}

// The real sampler, on this machine: a goroutine spinning for an interval shows
// up as more of this process's CPU than an interval of sleep, and the machine's
// idle cores stay within the machine.
func TestSamplerMeasuresThisProcess(t *testing.T) {
	sm, err := NewSampler()
	if err != nil {
		t.Fatalf("NewSampler on Linux: %v", err)
	}
	sm.Sample()
	time.Sleep(200 * time.Millisecond)
	quiet, ok := sm.Sample()
	if !ok {
		t.Fatal("no sample after 200 ms")
	}
	stop := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(stop) {
	}
	busy, ok := sm.Sample()
	if !ok {
		t.Fatal("no sample after 200 ms of spinning")
	}
	if !(busy.Busy > quiet.Busy+0.2) {
		t.Fatalf("spinning used %.2f cores, sleeping %.2f", busy.Busy, quiet.Busy)
	}
	b, _ := os.ReadFile("/proc/stat")
	_, _, cpus, _ := ParseStat(b)
	for _, s := range []Sample{quiet, busy} {
		if s.Idle < 0 || s.Idle > float64(cpus)+0.01 {
			t.Fatalf("idle %.2f cores on a machine of %d", s.Idle, cpus)
		}
	}
}
