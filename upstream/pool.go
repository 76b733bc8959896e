package upstream

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/credbridge/credbridge/translate"
	"github.com/valyala/fasthttp"
)

// DefaultIdleTimeout is how long an idle connection stays in the pool: below
// the keep-alive timeouts servers commonly use (Apache 5 s, uwsgi closes at
// once, nginx 75 s, Go 90 s), so the pool drops a connection before the server
// does rather than race it.
const DefaultIdleTimeout = 4 * time.Second

// conn is the connection the pool dials: it counts the bytes read since the
// request went out (was any of an answer received?) and can look at its
// socket without blocking (has the server closed it?). One exchange uses it at
// a time; the pool's lock orders the hand-overs.
type conn struct {
	net.Conn
	got  int
	peek peeker
	// peeks counts the checks made (for the tests).
	peeks int
	// tls: the conn carries TLS; left and hdr follow its record framing in
	// the bytes read (left: bytes of the current record still to come; hdr
	// the part of a record header read so far), and probe makes Read fail
	// at once (see tlsLeftover).
	tls   bool
	probe bool
	left  int
	hdrN  int
	hdr   [5]byte
	one   [1]byte
}

func (c *conn) Read(p []byte) (int, error) {
	if c.probe {
		return 0, errProbe
	}
	n, err := c.Conn.Read(p)
	c.got += n
	if c.tls {
		c.track(p[:n])
	}
	return n, err
}

// track follows the TLS record framing over b, the next bytes read.
func (c *conn) track(b []byte) {
	for len(b) > 0 {
		if c.left > 0 {
			k := min(c.left, len(b))
			c.left, b = c.left-k, b[k:]
			continue
		}
		k := copy(c.hdr[c.hdrN:], b)
		c.hdrN, b = c.hdrN+k, b[k:]
		if c.hdrN == len(c.hdr) {
			c.left, c.hdrN = int(c.hdr[3])<<8|int(c.hdr[4]), 0
		}
	}
}

// tlsLeftover: the TLS layer over c (tc under it) holds something read past
// the answer, which the next caller on the connection would read as its
// answer -- and which neither fasthttp's read buffer (exchange's overran) nor
// the check before reuse (it looks at the socket) can see. tls.Conn reads what
// the socket has, not one record: a record the upstream sent after the answer
// in the same segment waits in tls.Conn's buffer, as does plaintext past the
// answer in the answer's own record, past fasthttp's 4 KiB read buffer. A
// record read in part is such bytes; otherwise one Read on the tls.Conn, with
// tc failing every read at once (no system call), says whether it has
// anything left to give.
func (tc *conn) tlsLeftover(c net.Conn) bool {
	t, ok := c.(*tls.Conn)
	if !ok {
		return false
	}
	if tc.left > 0 || tc.hdrN > 0 {
		return true
	}
	tc.probe = true
	n, err := t.Read(tc.one[:])
	tc.probe = false
	return n > 0 || !errors.Is(err, errProbe)
}

// errProbe is conn.Read's failure while probing: a temporary net.Error, which
// tls.Conn does not keep as the connection's error.
var errProbe net.Error = probeError{}

type probeError struct{}

func (probeError) Error() string   { return "upstream: probing the TLS layer (no read)" }
func (probeError) Timeout() bool   { return false }
func (probeError) Temporary() bool { return true }

// ours finds the pool's conn under c (fasthttp wraps it in tls.Conn for https).
func ours(c net.Conn) *conn {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*conn)
	return tc
}

// staleError is a failure before any byte of an answer, of a request that may
// be sent once more (see resendable). Mostly a reused connection the server
// closed as the request went out; a fresh one that dropped is treated alike
// (the resend is as harmless, and a backend restarting drops those too).
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// isStale: err (not nil) is a staleError. A function of its own, so that the
// target errors.As needs escapes only on the failure path.
func isStale(err error) bool {
	var s *staleError
	return errors.As(err, &s)
}

// transport is fasthttp's default round trip with three changes: a pooled
// connection the server has closed (or that has idled past idle) is closed
// instead of used, as go-redis's pool checks a connection before reuse; the
// bytes of the answer are counted; and a failure before any answer byte comes
// back as a staleError when the request may be resent. fasthttp's own retry is
// off (it resends by method alone, and cannot tell an answer cut short from
// one never begun).
type transport struct {
	idle time.Duration
	// keystone: creates go to a Keystone /v3/credentials (see resendable).
	keystone bool
}

func (t *transport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	// One clock read serves the call: its deadline, the reuse check and both
	// socket deadlines (each read costs ~50 ns on a VM's clock).
	now := time.Now()
	var deadline time.Time
	if d := req.GetTimeOut(); d > 0 {
		deadline = now.Add(d)
	}
	cc, err := hc.AcquireConn(req.GetTimeOut(), req.ConnectionClose())
	for err == nil && !cc.LastUseTime().IsZero() && !t.reusable(cc.Conn(), now.Sub(cc.LastUseTime())) {
		// Nothing was sent on it: take the next one (or a new one), for any method.
		hc.CloseConn(cc)
		cc, err = hc.AcquireConn(req.GetTimeOut(), req.ConnectionClose())
	}
	if err != nil {
		return false, err
	}
	c := cc.Conn()
	tc := ours(c)
	if tc != nil {
		tc.got = 0
	}
	overran, err := exchange(hc, c, req, resp, now, deadline)
	if err == nil && !overran && tc != nil && tc.tls {
		overran = tc.tlsLeftover(c)
	}
	if err != nil {
		if tc != nil && tc.got == 0 && connDropped(err) && t.resendable(req) {
			err = &staleError{err}
		}
		hc.CloseConn(cc)
		return false, err
	}
	if overran || req.ConnectionClose() || resp.ConnectionClose() {
		hc.CloseConn(cc)
	} else {
		hc.ReleaseConn(cc)
	}
	return false, nil
}

// reusable: c has idled less than t.idle and its socket has neither an EOF nor
// unsolicited bytes waiting (a 408 before a close, a TLS alert).
//
// The check is one recvfrom per reuse, about a microsecond of kernel time on a
// loaded loopback, and it is made on every reuse: nothing short of looking at
// the socket tells bytes an upstream wrote after an answer (a duplicated
// answer, the final answer after an interim 1xx fasthttp took for the answer,
// a body after a 204, a 408 or a TLS close_notify before a close) from the
// next answer, and read as the next answer they would hand one caller
// another's -- and shift every later call on the connection onto the answer
// of the one before it (TestLateBytesOnKeptConnectionNeverAnswerTheNextCaller).
// Bytes past an answer that came with it are caught after the answer instead
// (exchange's overran). What the check cannot see is what is still on its way
// as the request goes out: a close then fails before any answer byte and is
// resent (staleError).
//
// A request that may not be resent never reaches a reused connection (Do).
func (t *transport) reusable(c net.Conn, idled time.Duration) bool {
	if idled >= t.idle {
		return false
	}
	tc := ours(c)
	if tc == nil {
		return true
	}
	tc.peeks++
	return tc.peek.alive()
}

// resendable says whether a request that may have reached the backend can be
// sent a second time without changing the outcome. Each case, and why:
//   - GET, HEAD: reads.
//   - PUT, PATCH: the bridge always sends the key's full target state (status,
//     description), never a delta, so applying it twice leaves the same key.
//   - DELETE: deleting the key again removes nothing more (at worst a 404).
//   - POST to Keystone's /v3/credentials: Keystone makes an ec2 credential's
//     id sha256(access), and the bridge sends the same access key both times,
//     so a second create collides (409) instead of making a second key.
//   - POST to oscred or IBM: never. Both mint a new key per create, so a
//     create the backend performed before the connection died would leave the
//     user with two keys (and a quota slot gone).
func (t *transport) resendable(req *fasthttp.Request) bool {
	switch string(req.Header.Method()) {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	case http.MethodPost:
		return t.keystone && bytes.HasSuffix(req.URI().Path(), keystoneCreds)
	}
	return false
}

var keystoneCreds = []byte(BasePath(translate.SideKeystone))

// exchange writes req on c and reads its answer into resp; overran says bytes
// came after the answer's end (the connection must not be reused). Both socket
// deadlines are the call's deadline or now plus the client's timeout for that
// direction, whichever comes first; when they are the same instant (the usual
// case: one timeout for both) one SetDeadline sets them, one timer update
// instead of two.
func exchange(hc *fasthttp.HostClient, c net.Conn, req *fasthttp.Request, resp *fasthttp.Response, now, deadline time.Time) (overran bool, err error) {
	wd, rd := earliest(now, deadline, hc.WriteTimeout), earliest(now, deadline, hc.ReadTimeout)
	if wd.Equal(rd) {
		err = c.SetDeadline(wd)
	} else {
		err = c.SetWriteDeadline(wd)
	}
	if err != nil {
		return false, err
	}
	bw := hc.AcquireWriter(c)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		return false, timeoutAsErrTimeout(err)
	}
	if !wd.Equal(rd) {
		if err := c.SetReadDeadline(rd); err != nil {
			return false, err
		}
	}
	if req.Header.IsHead() {
		resp.SkipBody = true
	}
	br := hc.AcquireReader(c)
	err = resp.ReadLimitBody(br, hc.MaxResponseBodySize)
	overran = br.Buffered() > 0
	hc.ReleaseReader(br)
	return overran, timeoutAsErrTimeout(err)
}

// earliest is the call's deadline or now+d, whichever comes first (d 0: none).
func earliest(now, deadline time.Time, d time.Duration) time.Time {
	if d > 0 {
		if t := now.Add(d); deadline.IsZero() || t.Before(deadline) {
			return t
		}
	}
	return deadline
}

func timeoutAsErrTimeout(err error) error {
	if err == nil {
		return nil // before errors.As: its target would escape, an allocation per call
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return fasthttp.ErrTimeout
	}
	return err
}
