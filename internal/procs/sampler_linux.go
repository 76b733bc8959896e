package procs

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"
)

// procSampler reads the machine's idle time from /proc/stat and this process's
// CPU time from getrusage.
type procSampler struct {
	prevIdle, prevTotal uint64
	prevCPU             time.Duration
	prevAt              time.Time
}

// NewSampler fails where /proc/stat cannot be read or parsed.
func NewSampler() (Sampler, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	if _, _, _, ok := ParseStat(b); !ok {
		return nil, errors.New("procs: /proc/stat has no aggregate cpu line")
	}
	return &procSampler{}, nil
}

func (p *procSampler) Sample() (Sample, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Sample{}, false
	}
	idle, total, cpus, ok := ParseStat(b)
	if !ok {
		return Sample{}, false
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return Sample{}, false
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	now := time.Now()
	prev := *p
	p.prevIdle, p.prevTotal, p.prevCPU, p.prevAt = idle, total, cpu, now
	dWall := now.Sub(prev.prevAt).Seconds()
	if prev.prevAt.IsZero() || total <= prev.prevTotal || idle < prev.prevIdle || cpu < prev.prevCPU || dWall <= 0 {
		return Sample{}, false // the first call, or counters that did not move forward
	}
	return Sample{
		Busy: (cpu - prev.prevCPU).Seconds() / dWall,
		Idle: float64(idle-prev.prevIdle) / float64(total-prev.prevTotal) * float64(cpus),
	}, true
}

// ParseStat reads /proc/stat: the aggregate line's idle ticks (idle + iowait),
// its total ticks (user through steal; guest time is already inside user), and
// how many cpuN lines follow. ok is false when the aggregate line is missing or
// malformed.
func ParseStat(b []byte) (idle, total uint64, cpus int, ok bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		f := bytes.Fields(line)
		if len(f) == 0 || !bytes.HasPrefix(f[0], []byte("cpu")) {
			continue
		}
		if len(f[0]) > 3 {
			cpus++
			continue
		}
		if ok || len(f) < 9 {
			return 0, 0, 0, false // a second aggregate line, or too few fields
		}
		for i := 1; i <= 8; i++ {
			v, err := strconv.ParseUint(string(f[i]), 10, 64)
			if err != nil {
				return 0, 0, 0, false
			}
			if total+v < total {
				return 0, 0, 0, false // no real counter sum overflows
			}
			total += v
			if i == 4 || i == 5 { // idle, iowait
				idle += v
			}
		}
		ok = true
	}
	return idle, total, cpus, ok && cpus > 0
}
