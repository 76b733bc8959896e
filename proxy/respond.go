package proxy

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"github.com/labstack/echo/v4"
	"github.com/tidwall/gjson"
)

var noAnswer upstream.Answer

// Header values every answer of a kind carries, shared by all of them: net/http
// only reads them, and their length is their capacity, so an append by anyone
// would copy rather than write into them. One slice less per answer.
var (
	ctOscred    = []string{"application/json;charset=utf8"}
	ctEC2       = []string{"application/json; charset=utf-8"}
	wwwAuth     = []string{`Keystone uri="/v3"`}
	warnSecret  = []string{`299 - "secret not changed: upstream cannot change secrets"`}
	retryAfter1 = []string{"1"}
)

// blob writes status and body as JSON of side's content type (echo's Blob
// makes the Content-Type slice anew on every call).
func blob(c echo.Context, side translate.Side, status int, body []byte) error {
	ct := ctEC2
	if side.Dialect == translate.Oscred {
		ct = ctOscred
	}
	w := c.Response()
	if h := w.Header(); len(h["Content-Type"]) == 0 { // as echo: a type already set stays
		h["Content-Type"] = ct[:1:1]
	}
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// writeError is the one place errors reach a client: its dialect, JSON, always.
// The cause stays out of the answer; the access line carries it.
func (s *Server) writeError(c echo.Context, side translate.Side, reqID string, e *translate.Error) {
	h := c.Response().Header()
	s.headers(h, side, reqID, noAnswer)
	if e.Code == translate.CodeUnauthorized && side.Dialect == translate.EC2Blob {
		h["Www-Authenticate"] = wwwAuth[:1:1]
	}
	_ = blob(c, side, e.StatusFor(side), translate.AppendError(make([]byte, 0, 256), side, e))
}

// reply writes a success answer (or a same-dialect upstream answer) to the client.
func (s *Server) reply(k *call, status int, body []byte, from upstream.Answer) *translate.Error {
	h := k.c.Response().Header()
	s.headers(h, k.client, k.reqID, from)
	if k.warn {
		h["Warning"] = warnSecret[:1:1]
	}
	if status == http.StatusNoContent || len(body) == 0 {
		return noErr(k.c.NoContent(status))
	}
	return noErr(blob(k.c, k.client, status, body))
}

// noErr drops write errors: the client went away and there is no one to tell.
func noErr(error) *translate.Error { return nil }

// pass relays a same-dialect answer untouched, unless it is not the JSON the
// dialect promises or a failure of the backend itself (5xx), which become the
// bridge's own error. Keystone links are the one change to what is passed: the
// upstream's own address stays behind the bridge.
func (s *Server) pass(k *call, a upstream.Answer) *translate.Error {
	switch {
	case a.Status == http.StatusNoContent:
		return s.reply(k, a.Status, nil, a)
	case a.Status < 200 || (a.Status >= 300 && a.Status < 400):
		return translate.ErrBadGateway("upstream answered with an unexpected status")
	case a.Status >= 500:
		// Not passed on: a backend's failure text names its insides. The
		// status stays; the text goes to the access line.
		return s.upError(k.op, a)
	case len(a.Body) == 0 || !gjson.ValidBytes(a.Body):
		if a.Status >= 400 {
			return s.upError(k.op, a)
		}
		return translate.ErrBadGateway("upstream answered with something that is not JSON")
	}
	if s.side == translate.SideKeystone {
		k.out = translate.RewriteLinks(k.out, a.Body, s.publicURL)
		return s.reply(k, a.Status, k.out, a)
	}
	return s.reply(k, a.Status, a.Body, a)
}

// upError maps an upstream error answer to a neutral error; op chooses the
// mapping (an ec2blob 409 is a quota error on create only).
func (s *Server) upError(op translate.Op, a upstream.Answer) *translate.Error {
	return translate.ParseUpstreamError(s.side, op, a.Status, a.Body)
}

// requestID keeps a sane client X-Request-Id, else makes one.
func requestID(r *http.Request) string {
	if v := r.Header.Get("X-Request-Id"); v != "" && len(v) <= 128 && policy.ValidTokenSyntax(v) {
		return v
	}
	var b [32]byte
	randHex(b[:])
	return string(b[:])
}

// randHex fills b with random lower-case hex digits, 16 from each draw.
func randHex(b []byte) {
	var x uint64
	for i := range b {
		if i%16 == 0 {
			x = rand.Uint64()
		}
		b[i] = hexDigits[x&0xf]
		x >>= 4
	}
}

// headers sets what every answer to side carries: X-Request-Id for oscred,
// X-Trans-Id and X-Timestamp for ec2blob (the upstream's when it sent them).
func (s *Server) headers(h http.Header, side translate.Side, reqID string, from upstream.Answer) {
	if side.Dialect == translate.Oscred {
		h["X-Request-Id"] = []string{reqID}
		return
	}
	if v := from.Header("X-Trans-Id"); v != "" && validTransID(v) {
		if ts := from.Header("X-Timestamp"); ts != "" {
			h["X-Trans-Id"] = []string{v}
			h["X-Timestamp"] = []string{ts}
			return
		}
	}
	// Both values in one string and one slice backing: two allocations, not four.
	now := s.now()
	var b [64]byte
	v := appendTransID(b[:0], reqID, now)
	n := len(v)
	v = translate.AppendTimestamp(v, now)
	str, vals := string(v), make([]string, 2)
	vals[0], vals[1] = str[:n], str[n:]
	h["X-Trans-Id"], h["X-Timestamp"] = vals[0:1:1], vals[1:2:2]
}

// appendTransID appends Swift's form: "tx" + 21 hex + "-" + 10 hex (the unix time).
func appendTransID(dst []byte, reqID string, now time.Time) []byte {
	var b [34]byte
	b[0], b[1], b[23] = 't', 'x', '-'
	if len(reqID) >= 21 && isHex(reqID[:21]) {
		copy(b[2:23], reqID[:21])
	} else {
		randHex(b[2:23])
	}
	t := uint64(now.Unix())
	for i := 33; i >= 24; i-- {
		b[i] = hexDigits[t&0xf]
		t >>= 4
	}
	return append(dst, b[:]...)
}

const hexDigits = "0123456789abcdef"

func validTransID(v string) bool {
	return len(v) == 34 && strings.HasPrefix(v, "tx") && v[23] == '-' && isHex(v[2:23]) && isHex(v[24:])
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}
