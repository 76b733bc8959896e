package app

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/translate"
)

// identityOn serves the reference identity service on addr ("127.0.0.1:0":
// a free port) until the returned stop is called.
func identityOn(t *testing.T, idn *emulator.Identity, addr string) (url string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: idn.Handler(), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop = func() { _ = srv.Close() }
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

func probeEvery(t *testing.T, d time.Duration) {
	old := identityProbeEvery
	identityProbeEvery = d
	t.Cleanup(func() { identityProbeEvery = old })
}

func TestReadyzNamesTheIdentityServiceWhenItIsDown(t *testing.T) {
	probeEvery(t, 50*time.Millisecond)
	c := newCloud(t, translate.SideOscred)
	var stop func()
	c.idURL, stop = identityOn(t, c.idn, "127.0.0.1:0")
	rt, _ := startBridge(t, c)
	admin, client := "http://"+rt.AdminAddr(), "http://"+rt.Addr()
	if r := bt.Do(t, client, "GET", oscredPath, bt.Alice, "", ""); r.Status != 200 {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	if r := bt.Do(t, admin, "GET", "/readyz", "", "", ""); r.Status != 200 || string(r.Body) != "ready\n" {
		t.Fatalf("readyz with identity up: %d %q", r.Status, r.Body)
	}

	stop()
	// Nothing asks the bridge for a new token: the probe alone notices.
	var body string
	waitFor(t, func() bool {
		r := bt.Do(t, admin, "GET", "/readyz", "", "", "")
		if r.Status != 200 {
			t.Fatalf("readyz must stay 200 while cached tokens serve: %d %s", r.Status, r.Body)
		}
		body = string(r.Body)
		return strings.Contains(body, "identity service unreachable")
	})
	if !strings.HasPrefix(body, "ready, degraded: identity: ") || !strings.Contains(body, "cached tokens still serve") {
		t.Fatalf("readyz: %q", body)
	}
	if r := bt.Do(t, client, "GET", oscredPath, bt.Alice, "", ""); r.Status != 200 {
		t.Fatalf("a cached token while identity is down: %d %s", r.Status, r.Body)
	}
	if r := bt.Do(t, client, "GET", oscredPath, bt.Bob, "", ""); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("a new token while identity is down: %d %s", r.Status, r.Body)
	}

	// Back on the same address: the next probe clears it.
	identityOn(t, c.idn, strings.TrimPrefix(c.idURL, "http://"))
	waitFor(t, func() bool { return string(bt.Do(t, admin, "GET", "/readyz", "", "", "").Body) == "ready\n" })
}

// TestReadyzNeverCallsTheIdentityService: /readyz reads what the last call or
// probe learnt, so hammering it is no lever on the identity service.
func TestReadyzNeverCallsTheIdentityService(t *testing.T) {
	probeEvery(t, time.Hour)
	c := newCloud(t, translate.SideOscred)
	rt, _ := startBridge(t, c)
	before := c.idn.Requests()
	for range 100 {
		if r := bt.Do(t, "http://"+rt.AdminAddr(), "GET", "/readyz", "", "", ""); r.Status != 200 {
			t.Fatalf("readyz: %d %s", r.Status, r.Body)
		}
	}
	if n := c.idn.Requests(); n != before {
		t.Fatalf("100 /readyz calls made %d identity calls", n-before)
	}
}

// TestBusyBridgeDoesNotProbe: validations are the reachability signal; the
// probe runs only when they have been quiet for an interval.
func TestBusyBridgeDoesNotProbe(t *testing.T) {
	probeEvery(t, 200*time.Millisecond)
	c := newCloud(t, translate.SideOscred)
	rt, _ := startBridge(t, c, "CREDBRIDGE_CACHE_LOCAL_TTL=1ms", "CREDBRIDGE_CACHE_TTL=1ms")
	before := c.idn.Requests()
	calls := 0
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if r := bt.Do(t, "http://"+rt.Addr(), "GET", oscredPath, bt.Alice, "", ""); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		calls++
	}
	// Each request validates (cache entries live 1 ms); any more identity
	// calls than that would be probes.
	if n := c.idn.Requests() - before; n > int64(calls) {
		t.Fatalf("%d identity calls for %d validations: a busy bridge probed", n, calls)
	}
}
