package upstream

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/internal/testing/backend"
	"github.com/credbridge/credbridge/translate"
	"github.com/valyala/fasthttp"
)

func newClient(t *testing.T, side translate.Side, url string, idle time.Duration) *Client {
	t.Helper()
	c, err := New(Options{Peer: "upstream", Side: side, URL: url, Timeout: 5 * time.Second, MaxConns: 8, IdleTimeout: idle})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func call(t *testing.T, c *Client, r Request) (int, string) {
	t.Helper()
	r.Token = "demo-alice-token"
	a, err := c.Do(r)
	if err != nil {
		return 0, err.Error()
	}
	defer a.Release()
	return a.Status, string(a.Body)
}

// createBody is a create of a key for u-alice in the backend's own dialect.
func createBody(side translate.Side) []byte {
	switch side {
	case translate.SideOscred:
		return []byte(`{"credential":{"user_id":"u-alice"}}`)
	case translate.SideIBM:
		return []byte(`{"credential":{"user_id":"u-alice","type":"ec2","blob":{}}}`)
	}
	return []byte(`{"credential":{"user_id":"u-alice","type":"ec2","blob":"{\"access\":\"AKSTALE0000000000001\",\"secret\":\"s\"}"}}`)
}

// A server that closes after every answer, unannounced: each pooled connection
// is dead by the next request, and the check before reuse finds it, so every
// request succeeds on the pool alone (no resend: the pool is called directly).
func TestClosedConnectionNotHandedOut(t *testing.T) {
	var got, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		_, _ = w.Write([]byte(`{"credentials":[]}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	emulator.Conns{CloseAfterAnswer: true}.Apply(srv.Config)
	srv.Start()
	defer srv.Close()
	c := newClient(t, translate.SideOscred, srv.URL, time.Minute)
	const n = 20
	for i := 0; i < n; i++ {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(srv.URL + BasePath(translate.SideOscred))
		err := c.hc.DoTimeout(req, resp, 5*time.Second)
		if err != nil || resp.StatusCode() != 200 {
			t.Fatalf("list %d on the pool: %d %v", i, resp.StatusCode(), err)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		time.Sleep(5 * time.Millisecond) // the server's FIN arrives: this tests the check, not the race
	}
	if got.Load() != n || conns.Load() != n {
		t.Fatalf("server saw %d requests on %d connections for %d lists", got.Load(), conns.Load(), n)
	}
}

// A create that may not be resent goes out on a connection of its own, never a
// pooled one: on a server that closes idle connections at once, every one of
// them succeeds even sent back to back.
func TestUnsafeRequestOnOwnConnection(t *testing.T) {
	b := backend.Start(t, translate.SideIBM, emulator.Conns{IdleTimeout: time.Millisecond})
	c := newClient(t, translate.SideIBM, b.URL, time.Minute)
	list := Request{Method: "GET", Path: BasePath(translate.SideIBM)}
	for i := 0; i < 2; i++ { // two keys: IBM's quota
		if st, body := call(t, c, list); st != 200 {
			t.Fatalf("list: %d %s", st, body)
		}
		before := b.Conns()
		if st, body := call(t, c, Request{Method: "POST", Path: BasePath(translate.SideIBM), Body: createBody(translate.SideIBM)}); st != 201 {
			t.Fatalf("create %d: %d %s", i, st, body)
		}
		if b.Conns() != before+1 {
			t.Fatalf("the create did not open a connection of its own")
		}
	}
}

// Connections idle past the idle timeout are dropped, not reused; ones used
// sooner are kept.
func TestIdleTimeoutDropsConnections(t *testing.T) {
	b := backend.Start(t, translate.SideOscred, emulator.Conns{})
	// A second of idle timeout: wide enough that a loaded CI machine's
	// scheduling delays between the first two calls stay well within it.
	c := newClient(t, translate.SideOscred, b.URL, time.Second)
	list := Request{Method: "GET", Path: BasePath(translate.SideOscred)}
	for _, pause := range []time.Duration{0, 10 * time.Millisecond, 2200 * time.Millisecond} {
		time.Sleep(pause)
		if st, body := call(t, c, list); st != 200 {
			t.Fatalf("list: %d %s", st, body)
		}
	}
	if got := b.Conns(); got != 2 {
		t.Fatalf("%d connections; want 2 (one reused within the idle timeout, one after it)", got)
	}
	if DefaultIdleTimeout >= 5*time.Second {
		t.Fatalf("DefaultIdleTimeout %s is not below Apache's 5 s keep-alive timeout", DefaultIdleTimeout)
	}
}

// A request that reached the backend and lost its answer (the connection
// closed instead) is resent once on a fresh connection only when a second copy
// cannot change the outcome: the backend's request count says how often it
// was sent. Safe ones are lost on a reused connection (the first request
// answered, pooled); unsafe ones are never sent on a reused one, so theirs
// is lost on its own connection.
func TestResendOnlyWhenSafe(t *testing.T) {
	cases := []struct {
		side   translate.Side
		method string
		resent bool
	}{
		{translate.SideOscred, "GET", true},
		{translate.SideOscred, "PUT", true},
		{translate.SideOscred, "DELETE", true},
		{translate.SideOscred, "POST", false}, // would make a second key
		{translate.SideIBM, "PATCH", true},
		{translate.SideIBM, "POST", false}, // would make a second key
		{translate.SideKeystone, "PATCH", true},
		{translate.SideKeystone, "POST", true}, // same access, same id: collides, read back
	}
	for _, tc := range cases {
		t.Run(tc.side.String()+"/"+tc.method, func(t *testing.T) {
			lose := func(r *http.Request, nth int64) bool { return r.Method == tc.method && (nth > 1 || !tc.resent) }
			b := backend.Start(t, tc.side, emulator.Conns{LoseAnswer: lose})
			c := newClient(t, tc.side, b.URL, time.Minute)
			// The first request on the connection is answered; it goes back to the pool.
			if st, body := call(t, c, Request{Method: "GET", Path: BasePath(tc.side)}); st != 200 {
				t.Fatalf("list: %d %s", st, body)
			}
			r := Request{Method: tc.method, Path: KeyPath(tc.side, tc.side.ID("AKNOSUCHKEY000000001"))}
			switch tc.method {
			case "POST":
				r.Path, r.Body = BasePath(tc.side), createBody(tc.side)
			case "PUT", "PATCH":
				r.Body = []byte(`{"credential":{"status":"inactive"}}`)
			}
			st, body := call(t, c, r)
			want := int64(2)
			if tc.resent {
				want = 3
			}
			if tc.method == "POST" && tc.resent {
				want = 4 // and the read-back of the key the first copy made
			}
			if got := b.Requests(); got != want {
				t.Fatalf("backend saw %d requests, want %d (answer %d %s)", got, want, st, body)
			}
			if tc.resent && st == 0 || !tc.resent && st != 0 {
				t.Fatalf("answer %d %s (resent: %v)", st, body, tc.resent)
			}
			if tc.method == "POST" && tc.resent && (st != http.StatusCreated || !strings.Contains(body, "AKSTALE0000000000001") || len(b.Store.Keys(nil)) != 1) {
				t.Fatalf("Keystone's resent create answered %d %s with %d keys stored; want 201 with the one key the first copy made", st, body, len(b.Store.Keys(nil)))
			}
			if tc.method == "POST" && !tc.resent && len(b.Store.Keys(nil)) != 1 {
				t.Fatalf("%d keys after one create whose answer was lost", len(b.Store.Keys(nil)))
			}
		})
	}
}

// The read-back after a resent Keystone create shows only the key that create
// sent: a key of the same access made by someone else (another owner, another
// secret) keeps the 409, and nothing of it reaches the caller.
func TestResentCreateReadsBackOnlyItsOwnKey(t *testing.T) {
	var armed atomic.Bool
	lose := func(r *http.Request, nth int64) bool { return armed.Load() && r.Method == "POST" && nth > 1 }
	b := backend.Start(t, translate.SideKeystone, emulator.Conns{LoseAnswer: lose})
	c := newClient(t, translate.SideKeystone, b.URL, time.Minute)
	create := func(user, secret string) (int, string) {
		body := `{"credential":{"user_id":"` + user + `","type":"ec2","blob":"{\"access\":\"AKSTALE0000000000001\",\"secret\":\"` + secret + `\"}"}}`
		a, err := c.Do(Request{Method: "POST", Path: BasePath(translate.SideKeystone), Body: []byte(body), Token: "demo-admin-token"})
		if err != nil {
			return 0, err.Error()
		}
		defer a.Release()
		return a.Status, string(a.Body)
	}
	if st, body := create("u-bob", "bobs-secret-0000000000000000000000000000"); st != http.StatusCreated {
		t.Fatalf("bob's create: %d %s", st, body)
	}
	if st, body := call(t, c, Request{Method: "GET", Path: BasePath(translate.SideKeystone)}); st != 200 {
		t.Fatalf("list: %d %s", st, body) // the connection is answered once, then pooled
	}
	armed.Store(true)
	st, body := create("u-alice", "alices-secret-00000000000000000000000000")
	if st != http.StatusConflict || strings.Contains(body, "bobs-secret") || strings.Contains(body, "u-bob") {
		t.Fatalf("alice's resent create answered %d %s; want the 409, nothing of bob's key", st, body)
	}
}

// A connection dropped without an answer makes a safe request go out once
// more, on a connection of its own, and only once; an unsafe one not at all.
func TestResendIsOnce(t *testing.T) {
	for _, tc := range []struct {
		method string
		conns  int64
	}{{"PUT", 2}, {"POST", 1}} {
		t.Run(tc.method, func(t *testing.T) {
			var n atomic.Int64
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					n.Add(1)
					go func() { _, _ = nc.Read(make([]byte, 4096)); nc.Close() }()
				}
			}()
			c := newClient(t, translate.SideOscred, "http://"+ln.Addr().String(), time.Minute)
			if st, _ := call(t, c, Request{Method: tc.method, Path: BasePath(translate.SideOscred), Body: []byte(`{}`)}); st != 0 {
				t.Fatalf("answer %d from a server that never answers", st)
			}
			if got := n.Load(); got != tc.conns {
				t.Fatalf("%d connections, want %d", got, tc.conns)
			}
		})
	}
}

func TestPeek(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() (*conn, net.Conn) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		tc := &conn{Conn: c}
		tc.peek.init(c)
		t.Cleanup(func() { c.Close(); s.Close() })
		return tc, s
	}
	settle := func() { time.Sleep(20 * time.Millisecond) }
	t.Run("open and quiet", func(t *testing.T) {
		c, _ := dial()
		if !c.peek.alive() {
			t.Fatal("an open connection counted as dead")
		}
	})
	t.Run("closed by the server", func(t *testing.T) {
		c, s := dial()
		s.Close()
		settle()
		if c.peek.alive() {
			t.Fatal("a connection the server closed counted as alive")
		}
	})
	t.Run("unsolicited bytes", func(t *testing.T) {
		c, s := dial()
		_, _ = s.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n"))
		settle()
		if c.peek.alive() {
			t.Fatal("a connection with unread bytes counted as reusable")
		}
		// The peek took nothing off the socket.
		buf := make([]byte, 8)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "HTTP/1.1" {
			t.Fatalf("read %q, %v after the peek", buf, err)
		}
	})
	t.Run("peek allocates nothing", func(t *testing.T) {
		c, _ := dial()
		if a := testing.AllocsPerRun(100, func() { c.peek.alive() }); a != 0 {
			t.Fatalf("%v allocations per check", a)
		}
	})
}

// The check before reuse is made at every reuse of a kept connection (see
// transport.reusable for why it cannot be skipped), and a call on one the
// server closed meanwhile is resent, not failed.
func TestEveryReuseChecked(t *testing.T) {
	list := Request{Method: "GET", Path: BasePath(translate.SideOscred)}
	pooled := func(t *testing.T, c *Client) *conn {
		t.Helper()
		cc, err := c.hc.AcquireConn(time.Second, false)
		if err != nil {
			t.Fatal(err)
		}
		defer c.hc.ReleaseConn(cc)
		return ours(cc.Conn())
	}
	t.Run("kept connection", func(t *testing.T) {
		b := backend.Start(t, translate.SideOscred, emulator.Conns{})
		c := newClient(t, translate.SideOscred, b.URL, time.Minute)
		for i := 0; i < 10; i++ {
			if st, body := call(t, c, list); st != 200 {
				t.Fatalf("list %d: %d %s", i, st, body)
			}
		}
		tc := pooled(t, c)
		if b.Conns() != 1 || tc == nil || tc.peeks != 9 {
			t.Fatalf("%d connections; want 1, checked at each of its 9 reuses", b.Conns())
		}
	})
	t.Run("closed after every answer", func(t *testing.T) {
		b := backend.Start(t, translate.SideOscred, emulator.Conns{CloseAfterAnswer: true})
		c := newClient(t, translate.SideOscred, b.URL, time.Minute)
		for i := 0; i < 5; i++ {
			if st, body := call(t, c, list); st != 200 {
				t.Fatalf("list %d: %d %s", i, st, body)
			}
			time.Sleep(20 * time.Millisecond) // the FIN arrives before the next call
		}
		if b.Conns() != 5 {
			t.Fatalf("%d connections for 5 lists; want 5 (each found closed by the check, none resent)", b.Conns())
		}
	})
	t.Run("kept, then closed unannounced", func(t *testing.T) {
		// The server closes the connection after its second answer without
		// saying so; the third call finds the close at its check, or (the
		// FIN still on its way) fails before any answer byte and is resent
		// on a connection of its own: two connections either way.
		url, conns, served := rawServer(t, 2, func(n int64) string { return `{"credentials":[]}` }, func(int64) string { return "" })
		c := newClient(t, translate.SideOscred, url, time.Minute)
		for i := 0; i < 3; i++ {
			if st, body := call(t, c, list); st != 200 {
				t.Fatalf("list %d: %d %s", i, st, body)
			}
		}
		if conns.Load() != 2 || served.Load() != 3 {
			t.Fatalf("%d connections, %d requests served; want 2 and 3", conns.Load(), served.Load())
		}
	})
}

// rawServer answers each GET on a keep-alive connection with body(n), n
// counting the requests it has read from 1; the answer is written as extra(n)
// follows it, in the same write. After closeAfter answers on a connection (0:
// never) it closes it without saying so. It counts the connections it
// accepted and the requests it served.
func rawServer(t *testing.T, closeAfter int, body func(n int64) string, extra func(n int64) string) (url string, conns, served *atomic.Int64) {
	t.Helper()
	served = new(atomic.Int64)
	url, conns = scriptServer(t, nil, func(n int64, k int, c net.Conn) bool {
		served.Add(1)
		_, err := io.WriteString(c, answerOf(200, body(n))+extra(n))
		return err == nil && (closeAfter == 0 || k < closeAfter)
	})
	return url, conns, served
}

// An upstream that sends bytes past an answer's framing (a wrong
// Content-Length, a second answer) in the answer's own write must not have
// them read as the next caller's answer — which could be another user's key:
// the connection is closed after that answer.
func TestBytesPastAnAnswerNeverReachTheNextCaller(t *testing.T) {
	list := Request{Method: "GET", Path: BasePath(translate.SideOscred)}
	real := listOf
	forgedAnswer := answerOf(200, otherUsers)
	for _, tc := range []struct {
		name  string
		extra func(n int64) string
	}{
		// The forged answer lands in the client's read buffer with the real one.
		{"in the read buffer", func(n int64) string {
			if n != 2 {
				return ""
			}
			return forgedAnswer
		}},
		// Padding fills fasthttp's 4 KiB read buffer exactly, so the forged
		// answer stays in the socket: the next read on the connection would
		// begin with it (and does, with neither guard: the other user's key
		// comes back as call 3's answer). The check before reuse finds it.
		{"past the read buffer", func(n int64) string {
			if n != 2 {
				return ""
			}
			pad := 4096 - len(answerOf(200, real(n)))
			return strings.Repeat(" ", pad) + forgedAnswer
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, conns, _ := rawServer(t, 0, real, tc.extra)
			c := newClient(t, translate.SideOscred, url, time.Minute)
			for i := 1; i <= 4; i++ {
				st, body := call(t, c, list)
				if st != 200 || body != real(int64(i)) {
					t.Fatalf("call %d: %d %s; want the server's answer %s", i, st, body, real(int64(i)))
				}
			}
			if conns.Load() != 2 {
				t.Fatalf("%d connections; want 2 (the one that carried extra bytes closed after them)", conns.Load())
			}
		})
	}
}

// An answer longer than one segment keeps its connection (no bytes past it),
// and each reuse of that connection is checked.
func TestLongAnswerCheckedAtReuse(t *testing.T) {
	list := Request{Method: "GET", Path: BasePath(translate.SideOscred)}
	long := `{"credentials":[],"pad":"` + strings.Repeat("x", 2*1448) + `"}`
	url, conns, _ := rawServer(t, 0, func(int64) string { return long }, func(int64) string { return "" })
	c := newClient(t, translate.SideOscred, url, time.Minute)
	for i := 0; i < 5; i++ {
		if st, body := call(t, c, list); st != 200 || body != long {
			t.Fatalf("call %d: %d (%d bytes)", i, st, len(body))
		}
	}
	cc, err := c.hc.AcquireConn(time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.hc.ReleaseConn(cc)
	if tc := ours(cc.Conn()); conns.Load() != 1 || tc == nil || tc.peeks != 4 {
		t.Fatalf("%d connections; want 1, checked at each of its 4 reuses", conns.Load())
	}
}

// BenchmarkDoReused is one GET on a pooled connection: what the counting conn
// and the reuse check add to every upstream call.
func BenchmarkDoReused(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"credentials":[]}`))
	}))
	defer srv.Close()
	c, err := New(Options{Peer: "upstream", Side: translate.SideOscred, URL: srv.URL, Timeout: 5 * time.Second, MaxConns: 8})
	if err != nil {
		b.Fatal(err)
	}
	r := Request{Method: "GET", Path: BasePath(translate.SideOscred)}
	b.ReportAllocs()
	for b.Loop() {
		a, err := c.Do(r)
		if err != nil || a.Status != 200 {
			b.Fatalf("%d %v", a.Status, err)
		}
		a.Release()
	}
}

// The list asked again goes out on a kept connection too, and that one may
// have been closed by the server just as it was taken (uwsgi closes after
// every answer without saying so): the ask again is resent once on a fresh
// connection, as the first ask is, instead of failing the list with a 502.
// Seen as one list in a thousand failing in TestRealKeystoneMixed.
func TestKeystoneListRaceAskedAgainOnADroppedConnection(t *testing.T) {
	url, conns := scriptServer(t, nil, func(n int64, k int, c net.Conn) bool {
		switch {
		case n == 1: // the race: 404, connection kept
			_, err := io.WriteString(c, answerOf(404, `{"error":{"code":404}}`))
			return err == nil
		case k > 1: // the ask again on the kept connection: closed unanswered
			return false
		}
		_, _ = io.WriteString(c, answerOf(200, listOf(n)))
		return false
	})
	c := newClient(t, translate.SideKeystone, url, time.Minute)
	st, body := call(t, c, Request{Method: "GET", Path: BasePath(translate.SideKeystone)})
	if st != 200 || body != listOf(3) || conns.Load() != 2 {
		t.Fatalf("answer %d %s over %d connections; want 200 %s over 2", st, body, conns.Load(), listOf(3))
	}
}

// Keystone's list can answer 404 while a listed key is deleted: the client asks
// again, twice at most, and only for a Keystone list.
func TestKeystoneListRaceAskedAgain(t *testing.T) {
	for _, tc := range []struct {
		side      translate.Side
		path      string
		notFounds int64
		status    int
		requests  int64
	}{
		{translate.SideKeystone, BasePath(translate.SideKeystone), 1, 200, 2},
		{translate.SideKeystone, BasePath(translate.SideKeystone), 2, 200, 3},
		{translate.SideKeystone, BasePath(translate.SideKeystone), 5, 404, 3},
		{translate.SideKeystone, KeyPath(translate.SideKeystone, "abc"), 1, 404, 1}, // a key can be gone
		{translate.SideIBM, BasePath(translate.SideIBM), 1, 404, 1},
	} {
		t.Run(fmt.Sprintf("%s%s-%d", tc.side, tc.path, tc.notFounds), func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) <= tc.notFounds {
					http.Error(w, `{"error":{"code":404}}`, http.StatusNotFound)
					return
				}
				_, _ = w.Write([]byte(`{"credentials":[]}`))
			}))
			defer srv.Close()
			c := newClient(t, tc.side, srv.URL, time.Minute)
			if st, body := call(t, c, Request{Method: "GET", Path: tc.path}); st != tc.status || n.Load() != tc.requests {
				t.Fatalf("answer %d %s after %d requests; want %d after %d", st, body, n.Load(), tc.status, tc.requests)
			}
		})
	}
}
