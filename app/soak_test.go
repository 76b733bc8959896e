//go:build soak

// The soak test: `make soak` (go test -tags soak -run TestSoak ./app).
// SOAK_DURATION (default 2m) bounds it; all traffic stays on loopback.
package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/internal/testing/redistest"
	"github.com/credbridge/credbridge/translate"
)

// Upstream fault modes.
const (
	healthy int32 = iota
	slow          // answers late, within the bridge's upstream timeout
	stall         // answers after the timeout: 504s
	cut           // drops connections without an answer: 502s
)

type window struct {
	name       string
	start, end time.Duration
}

func (w window) String() string { return fmt.Sprintf("%s %s-%s", w.name, w.start, w.end) }

// soakState is what a worker knows about its one key.
type soakState struct {
	ak       string
	status   string // "active" | "inactive"
	desc     string
	hasKey   bool
	acked    int // acknowledged updates
	versions int
}

type tally struct {
	mu     sync.Mutex
	codes  map[string]int // "create 201", ...
	odd    []oddAnswer    // 5xx and 4xx other than 404, judged at the end
	sent   atomic.Int64
	stalls stallLog
}

// oddAnswer is an answer that needs an explanation: sent is when the request
// left (since the start), took how long it waited.
type oddAnswer struct {
	what       string
	code       int
	sent, took time.Duration
	msg        string
}

func (a oddAnswer) String() string {
	return fmt.Sprintf("%s -> %d sent at %s, took %s: %s", a.what, a.code,
		a.sent.Round(time.Millisecond), a.took.Round(time.Millisecond), a.msg)
}

func (a oddAnswer) overlaps(w window, grace time.Duration) bool {
	return a.sent+a.took >= w.start && a.sent <= w.end+grace
}

func (t *tally) add(what string, r *bt.Resp, sent, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.codes[fmt.Sprintf("%s %d", what, r.Status)]++
	if r.Status < 400 || r.Status == 404 {
		return
	}
	msg := string(r.Body)
	if len(msg) > 120 {
		msg = msg[:120]
	}
	t.odd = append(t.odd, oddAnswer{what, r.Status, sent, took, msg})
}

// unexpected returns the odd answers no injected fault explains: a 5xx is
// explained while a fault lasted or up to a timeout after it.
func (t *tally) unexpected(faults []window) []oddAnswer {
	var out []oddAnswer
next:
	for _, a := range t.odd {
		if a.code >= 500 {
			for _, w := range faults {
				if a.overlaps(w, 2*time.Second) {
					continue next
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// stallLog records when the test process itself stood still: a goroutine
// that wakes every 5 ms notes every wake-up later than 250 ms. It explains
// nothing away; it is in the report so that a timeout with no fault behind it
// can be told apart from a process that stopped (that is how the soak's own
// log buffer, copied while it grew to hundreds of MB, was found).
type stallLog struct {
	mu   sync.Mutex
	list []window
}

func (l *stallLog) watch(start time.Time, stop <-chan struct{}) {
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-tk.C:
			if gap := now.Sub(last); gap > 250*time.Millisecond {
				l.mu.Lock()
				l.list = append(l.list, window{"stall", last.Sub(start), now.Sub(start)})
				l.mu.Unlock()
			}
			last = now
		}
	}
}

func (l *stallLog) windows() []window {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]window(nil), l.list...)
}

func TestSoak(t *testing.T) {
	dur := 2 * time.Minute
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second || d > 30*time.Minute {
			t.Fatalf("SOAK_DURATION %q: want 10s..30m", v)
		}
		dur = d
	}
	const workers = 16
	users := emulator.DemoUsers()
	for i := 0; i < workers; i++ {
		users = append(users, emulator.User{ID: fmt.Sprintf("u-soak%d", i), Name: fmt.Sprintf("soak%d", i), DomainName: "demo",
			ProjectID: fmt.Sprintf("p-soak%d", i), Roles: []string{"member"}, Tokens: []string{fmt.Sprintf("soak-token-%d", i)}})
	}
	dir := emulator.NewDirectory(users)
	idn := httptest.NewServer(emulator.NewIdentity(dir).Handler())
	defer idn.Close()
	osc := emulator.NewOscred(dir)
	var mode atomic.Int32
	inner := osc.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case slow:
			time.Sleep(300 * time.Millisecond)
		case stall:
			time.Sleep(1500 * time.Millisecond)
		case cut:
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
					return
				}
			}
		}
		inner.ServeHTTP(w, r)
	}))
	defer up.Close()
	rds := redistest.Start(t)
	c := &cloud{dir: dir, idURL: idn.URL, upURL: up.URL, store: osc.Store}
	// Logs are counted, not kept: holding a few hundred MB of access lines in
	// one growing buffer stalled the whole test process for seconds while it
	// was copied (and timed out upstream calls that had nothing to do with it).
	cfg, err := config.Load("", []string{"CREDBRIDGE_LISTEN=127.0.0.1:0", "CREDBRIDGE_ADMIN_LISTEN=127.0.0.1:0",
		"CREDBRIDGE_UPSTREAM_URL=" + c.upURL, "CREDBRIDGE_IDENTITY_URL=" + c.idURL,
		"CREDBRIDGE_CACHE_REDIS_URL=" + rds.URL(), "CREDBRIDGE_CACHE_HMAC_KEY_FILE=" + secretFile(t, "an-hmac-key-of-decent-length-0123456789"),
		"CREDBRIDGE_UPSTREAM_TIMEOUT=1s",
		"CREDBRIDGE_CACHE_TTL=20s", "CREDBRIDGE_CACHE_LOCAL_TTL=2s"})
	if err != nil {
		t.Fatal(err)
	}
	var accessLines, logLines lineCounter
	rt, err := Start(cfg, Options{Log: slog.New(slog.NewJSONHandler(&logLines, nil)), AccessLog: &accessLines})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + rt.Addr()

	f := func(p float64) time.Duration { return time.Duration(p * float64(dur)) }
	upstream := func(m int32) func() { return func() { mode.Store(m) } }
	schedule := []struct {
		window
		on, off func()
	}{
		{window{"redis down", f(0.10), f(0.30)}, rds.Stop, rds.Restart},
		{window{"upstream slow", f(0.40), f(0.52)}, upstream(slow), upstream(healthy)},
		{window{"upstream cut", f(0.58), f(0.68)}, upstream(cut), upstream(healthy)},
		{window{"upstream stalls past the timeout", f(0.74), f(0.80)}, upstream(stall), upstream(healthy)},
	}
	faults := make([]window, len(schedule))
	for i, s := range schedule {
		faults[i] = s.window
	}
	start := time.Now()
	go func() { // the fault schedule
		at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
		for _, s := range schedule {
			at(s.start)
			s.on()
			at(s.end)
			s.off()
		}
	}()

	tl := &tally{codes: map[string]int{}}
	stopWatch := make(chan struct{})
	go tl.stalls.watch(start, stopWatch)
	states := make([]*soakState, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		states[w] = &soakState{}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			soakWorker(t, base, w, states[w], tl, start, dur, faults)
		}(w)
	}
	wg.Wait()
	close(stopWatch)
	mode.Store(healthy)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	// Every request has its access line once the server has drained.
	if got := accessLines.n.Load(); got != tl.sent.Load() {
		t.Errorf("access lines %d, requests sent %d", got, tl.sent.Load())
	}

	// Every acknowledged write is what the backend holds.
	lost := 0
	for w, s := range states {
		keys := osc.Keys(func(k emulator.Key) bool { return k.UserID == fmt.Sprintf("u-soak%d", w) })
		if !s.hasKey {
			if len(keys) != 0 {
				lost++
				t.Errorf("worker %d: deleted key still in the backend: %v", w, keys[0].AK)
			}
			continue
		}
		if len(keys) != 1 || keys[0].AK != s.ak {
			lost++
			t.Errorf("worker %d: backend holds %d keys, want %s", w, len(keys), s.ak)
			continue
		}
		k := keys[0]
		if (k.Active != (s.status == "active")) || k.Description != s.desc {
			lost++
			t.Errorf("worker %d: backend %v/%q, last acknowledged %s/%q", w, k.Active, k.Description, s.status, s.desc)
		}
	}
	var kinds []string
	for k, n := range tl.codes {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	acked := 0
	for _, s := range states {
		acked += s.acked
	}
	unexpected := tl.unexpected(faults)
	var gc debug.GCStats
	gc.PauseQuantiles = make([]time.Duration, 5)
	debug.ReadGCStats(&gc)
	t.Logf("soak %s: sent=%d acknowledged_updates=%d lost_updates=%d unexpected=%d\n  answered: %s\n  faults: %v\n  process stalls > 250ms: %v (longest GC pause %s)\n  bridge log lines (warnings and errors): %d",
		dur, tl.sent.Load(), acked, lost, len(unexpected), strings.Join(kinds, " "), faults, tl.stalls.windows(), gc.PauseQuantiles[4], logLines.n.Load())
	if len(unexpected) > 0 {
		t.Errorf("%d answers not explained by an injected fault, e.g. %v", len(unexpected), unexpected[:min(5, len(unexpected))])
	}
	if acked == 0 {
		t.Fatal("no update was acknowledged: the soak proved nothing")
	}
}

var sidesAll = []translate.Side{translate.SideOscred, translate.SideIBM, translate.SideKeystone}

// soakWorker owns one user and at most one key: create, update many times in
// random dialects, read, delete; every ambiguous failure is retried until the
// bridge acknowledges, so the last acknowledged write is the truth.
func soakWorker(t *testing.T, base string, w int, s *soakState, tl *tally, start time.Time, dur time.Duration, faults []window) {
	tok, user := fmt.Sprintf("soak-token-%d", w), fmt.Sprintf("u-soak%d", w)
	rng := rand.New(rand.NewPCG(uint64(w), 42))
	do := func(what, method, path, ct, body string) *bt.Resp {
		tl.sent.Add(1)
		sent := time.Since(start)
		r := bt.Do(t, base, method, path, tok, ct, body)
		tl.add(what, r, sent, time.Since(start)-sent)
		return r
	}
	// until repeats a request until ok accepts its status; gives up at the end.
	until := func(what, method string, path func() string, ct string, body func() string, ok func(int) bool) *bt.Resp {
		for {
			r := do(what, method, path(), ct, body())
			if ok(r.Status) || time.Since(start) > dur+30*time.Second {
				return r
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for time.Since(start) < dur {
		if !s.hasKey {
			side := sidesAll[rng.IntN(3)]
			body := map[translate.Side]string{
				translate.SideOscred:   `{"credential":{"user_id":"` + user + `","description":"v0"}}`,
				translate.SideIBM:      `{"credential":{"user_id":"` + user + `","type":"ec2","blob":{"description":"v0"}}}`,
				translate.SideKeystone: `{"credential":{"user_id":"` + user + `","type":"ec2","blob":"{\"description\":\"v0\"}"}}`,
			}[side]
			r := do("create", "POST", bt.Base(side), bt.CType(side), body)
			if r.Status == 201 {
				if side == translate.SideOscred {
					s.ak, _ = r.Cred()["access"].(string)
				} else {
					s.ak, _ = bt.Blob(r.Cred())["access"].(string)
				}
				s.hasKey, s.status, s.desc = true, "active", "v0"
				continue
			}
			// Ambiguous: the key may exist. Reconcile from a list once the bridge answers.
			r = until("reconcile-list", "GET", func() string { return "/v3.0/OS-CREDENTIAL/credentials" }, "", func() string { return "" },
				func(c int) bool { return c == 200 })
			for _, k := range listed(r) {
				ak := k
				until("reconcile-delete", "DELETE", func() string { return "/v3.0/OS-CREDENTIAL/credentials/" + ak }, "", func() string { return "" },
					func(c int) bool { return c == 204 || c == 404 })
			}
			continue
		}
		for i := 0; i < 5 && time.Since(start) < dur; i++ {
			side := sidesAll[rng.IntN(3)]
			s.versions++
			status := []string{"active", "inactive"}[rng.IntN(2)]
			desc := fmt.Sprintf("w%d-v%d", w, s.versions)
			ec2 := map[string]string{"active": "Active", "inactive": "Inactive"}[status]
			body := map[translate.Side]string{
				translate.SideOscred:   `{"credential":{"status":"` + status + `","description":"` + desc + `"}}`,
				translate.SideIBM:      `{"credential":{"blob":{"access":"` + s.ak + `","status":"` + ec2 + `","description":"` + desc + `"},"user_id":"` + user + `"}}`,
				translate.SideKeystone: `{"credential":{"blob":"{\"access\":\"` + s.ak + `\",\"status\":\"` + ec2 + `\",\"description\":\"` + desc + `\"}"}}`,
			}[side]
			r := until("update-"+side.String(), bt.UpdateMethod(side), func() string { return bt.KeyPath(side, s.ak) }, bt.CType(side),
				func() string { return body }, func(c int) bool { return c == 200 })
			if r.Status == 200 {
				s.status, s.desc = status, desc
				s.acked++
			}
		}
		side := sidesAll[rng.IntN(3)]
		do("get-"+side.String(), "GET", bt.KeyPath(side, s.ak), "", "")
		do("list", "GET", bt.Base(side), "", "")
		if rng.IntN(3) == 0 {
			r := until("delete", "DELETE", func() string { return bt.KeyPath(side, s.ak) }, "", func() string { return "" },
				func(c int) bool { return c == 204 || c == 404 })
			if r.Status == 204 || r.Status == 404 {
				s.hasKey = false
			}
		}
	}
}

// lineCounter counts the lines written to it and keeps none.
type lineCounter struct{ n atomic.Int64 }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n.Add(int64(bytes.Count(p, []byte{'\n'})))
	return len(p), nil
}

// listed returns the access keys in an oscred list answer.
func listed(r *bt.Resp) []string {
	var out []string
	if l, ok := r.JSON()["credentials"].([]any); ok {
		for _, c := range l {
			if m, ok := c.(map[string]any); ok {
				if ak, ok := m["access"].(string); ok {
					out = append(out, ak)
				}
			}
		}
	}
	return out
}
