package upstream

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/internal/testing/backend"
	"github.com/credbridge/credbridge/translate"
)

func warmClient(t *testing.T, url string, warm, maxConns int, idle time.Duration) *Client {
	t.Helper()
	c, err := New(Options{Peer: "upstream", Side: translate.SideOscred, URL: url, Timeout: 5 * time.Second,
		MaxConns: maxConns, IdleTimeout: idle, Warm: warm})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitConns waits until the backend has accepted want connections (its accept
// loop may run a moment after the client's connect returned) and returns the
// count it settled at.
func waitConns(b *backend.Backend, want int64) int64 {
	for end := time.Now().Add(2 * time.Second); b.Conns() < want && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // and no more come
	return b.Conns()
}

// New with Warm dials that many connections before it returns, capped by
// MaxConns, and a burst of as many concurrent requests right after runs on
// them without dialing one more.
func TestWarmDialsAheadOfTheFirstBurst(t *testing.T) {
	cases := []struct {
		name                string
		warm, maxConns, got int
	}{
		{"warm 8", 8, 16, 8},
		{"capped by max_conns", 20, 4, 4},
		{"off", 0, 16, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := backend.Start(t, translate.SideOscred, emulator.Conns{})
			c := warmClient(t, b.URL, tc.warm, tc.maxConns, time.Minute)
			if c.warmed != tc.got || waitConns(b, int64(tc.got)) != int64(tc.got) || b.Requests() != 0 {
				t.Fatalf("warmed %d, backend accepted %d connections and saw %d requests; want %d, %d, 0",
					c.warmed, b.Conns(), b.Requests(), tc.got, tc.got)
			}
			if tc.got == 0 {
				return
			}
			var wg sync.WaitGroup
			errs := make(chan string, tc.got)
			for i := 0; i < tc.got; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if st, body := call(t, c, Request{Method: "GET", Path: BasePath(translate.SideOscred)}); st != 200 {
						errs <- body
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Fatalf("a list on a warmed connection failed: %s", e)
			}
			if b.Conns() != int64(tc.got) {
				t.Fatalf("%d connections after the burst; want the %d warmed ones only", b.Conns(), tc.got)
			}
		})
	}
}

// Warmed connections the backend closes while they idle (an idle timeout
// shorter than ours) are found dead at reuse and replaced: nothing fails.
func TestWarmConnectionsClosedByTheBackend(t *testing.T) {
	b := backend.Start(t, translate.SideOscred, emulator.Conns{IdleTimeout: 30 * time.Millisecond})
	c := warmClient(t, b.URL, 4, 8, time.Minute)
	time.Sleep(150 * time.Millisecond)
	for i := 0; i < 8; i++ {
		if st, body := call(t, c, Request{Method: "GET", Path: BasePath(translate.SideOscred)}); st != 200 {
			t.Fatalf("list %d after the warmed connections were closed: %d %s", i, st, body)
		}
	}
}

// A backend that refuses connections does not fail New or hold it past
// WarmWait: the bridge starts, and its calls report the backend unreachable.
func TestWarmTowardABackendThatIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	start := time.Now()
	c := warmClient(t, url, 16, 16, time.Minute)
	if took := time.Since(start); c.warmed != 0 || took > WarmWait+time.Second {
		t.Fatalf("warmed %d in %s toward a closed port", c.warmed, took)
	}
	if st, body := call(t, c, Request{Method: "GET", Path: BasePath(translate.SideOscred)}); st != 0 || body == "" {
		t.Fatalf("a call toward the closed port: %d %q", st, body)
	}
}
