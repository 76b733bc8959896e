// Package upstream is the pooled client toward one backend: dialect paths, the
// service credentials sent with each call (token, Keystone login), and transport
// errors that keep their cause. proxy uses it for the client's request, migrate
// for the secondary; it knows nothing of echo or of the client's dialect.
package upstream

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/credbridge/credbridge/translate"
	"github.com/valyala/fasthttp"
)

// MaxAnswerBytes bounds an upstream answer; a list of keys is small, anything
// larger is garbage.
const MaxAnswerBytes = 4 << 20

// Options describe one backend.
type Options struct {
	// Peer names the backend in error messages ("upstream", "identity service").
	Peer string
	// Side is the dialect (and flavor) the backend speaks.
	Side translate.Side
	// URL is the base URL; dialect paths are appended to its path.
	URL string
	// Timeout bounds one call, connection wait included.
	Timeout time.Duration
	// MaxConns bounds the connections open to the backend.
	MaxConns int
	// TLS, when set, is the client TLS config (CA bundle, client certificate);
	// nil: the system roots, the URL's host as server name.
	TLS *tls.Config
	// IdleTimeout: an idle connection is closed after it (0: DefaultIdleTimeout).
	// It must stay below the backend's keep-alive timeout.
	IdleTimeout time.Duration
}

// Client is the pooled client toward the backend. It is fasthttp's HostClient
// rather than net/http's Transport: net/http hands every request to a write-loop
// and a read-loop goroutine and flushed our request head and body in two
// writes; HostClient writes the request in one go and reads the answer on the
// caller's goroutine. On the benchmark's B2A path this was the largest single
// cost after the syscalls themselves (docs/performance.md).
type Client struct {
	side    translate.Side
	base    string // scheme://host[:port], for span attributes
	prefix  string // the URL's path, prepended to dialect paths
	host    string
	scheme  string
	hc      *fasthttp.HostClient
	fresh   *fasthttp.HostClient // a connection per request: resends, and what may not be resent
	tr      *transport
	timeout time.Duration
	peer    string
}

// Answer is what the backend said. Body and headers stay valid until Release.
type Answer struct {
	Status int
	Body   []byte
	resp   *fasthttp.Response
}

// Header returns an answer header ("" when absent or no answer).
func (a Answer) Header(name string) string {
	if a.resp == nil {
		return ""
	}
	return string(a.resp.Header.Peek(name))
}

// Release returns the answer's buffers to the pool; Body is invalid after it.
func (a Answer) Release() {
	if a.resp != nil {
		fasthttp.ReleaseResponse(a.resp)
	}
}

// Held reports whether a holds pooled buffers (Release does something).
func (a Answer) Held() bool { return a.resp != nil }

// New builds the client for o.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("must be an http:// or https:// URL with a host")
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[u.Scheme == "https"])
	}
	tc := o.TLS
	if tc == nil {
		tc = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	idle := o.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	hc := hostClient(o, addr, u.Scheme == "https", tc)
	hc.MaxIdleConnDuration = idle
	tr := &transport{idle: idle, keystone: o.Side == translate.SideKeystone}
	hc.Transport = tr
	hc.Dial = func(addr string) (net.Conn, error) {
		c, err := fasthttp.DialTimeout(addr, dialTimeout)
		if err != nil {
			return nil, err
		}
		tc := &conn{Conn: c, tls: u.Scheme == "https"}
		tc.peek.init(c)
		return tc, nil
	}
	// A resend goes out on a connection of its own, closed after the answer
	// (Connection: close), so it cannot land on another stale one; so does
	// a request that may not be resent (see Do). These one-shot connections
	// have a MaxConns bound of their own: at most twice MaxConns in all, and
	// only while creates and resends are that many at once.
	fresh := hostClient(o, addr, u.Scheme == "https", tc)
	fresh.Dial = func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, dialTimeout) }
	return &Client{
		side: o.Side, base: u.Scheme + "://" + u.Host, prefix: strings.TrimRight(u.Path, "/"),
		host: u.Host, scheme: u.Scheme, hc: hc, fresh: fresh, tr: tr, timeout: o.Timeout, peer: o.Peer,
	}, nil
}

const dialTimeout = 5 * time.Second

// hostClient is the fasthttp client both pools share the settings of.
func hostClient(o Options, addr string, isTLS bool, tc *tls.Config) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:      addr,
		Name:      "credbridge",
		IsTLS:     isTLS,
		TLSConfig: tc,
		MaxConns:  o.MaxConns,
		// Past MaxConns a request waits for a free connection (within the
		// call's deadline) instead of failing at once.
		MaxConnWaitTimeout:            o.Timeout,
		ReadTimeout:                   o.Timeout,
		WriteTimeout:                  o.Timeout,
		MaxResponseBodySize:           MaxAnswerBytes,
		DisablePathNormalizing:        true, // paths are built from checked ids
		DisableHeaderNamesNormalizing: false,
		NoDefaultUserAgentHeader:      true,
		// fasthttp's own retry is off: it would resend a POST to oscred, and
		// cannot tell a reused connection from a fresh one (see transport).
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
	}
}

// Side is the dialect the backend speaks.
func (c *Client) Side() translate.Side { return c.side }

// Base is scheme://host[:port] of the backend.
func (c *Client) Base() string { return c.base }

// Host is host[:port] of the backend, as in its URL.
func (c *Client) Host() string { return c.host }

// BasePath is the collection path of a side (translate.BasePath).
func BasePath(s translate.Side) string { return translate.BasePath(s) }

// KeyPath is the path of one key on side s, upID as that side names it.
func KeyPath(s translate.Side, upID string) string { return BasePath(s) + "/" + upID }

// Request is one call. Body nil means no body; the body buffer may be reused
// once Do returns (the request is written by then).
type Request struct {
	Method, Path, Query string
	Body                []byte
	// Token is sent as X-Auth-Token ("" none).
	Token string
	// RequestID is sent as X-Request-Id ("" none).
	RequestID string
	// Trace headers (traceparent, tracestate) to send; nil none.
	Trace http.Header
}

var (
	hdrJSON       = []byte("application/json")
	hdrOscredJSON = []byte("application/json;charset=utf8")
)

// Do sends one request and waits for the answer, which the caller releases.
func (c *Client) Do(r Request) (Answer, *translate.Error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(r.Method)
	uri := req.URI()
	uri.SetScheme(c.scheme)
	uri.SetHost(c.host) // fasthttp writes the Host header from the URI
	uri.SetPath(c.prefix + r.Path)
	if r.Query != "" {
		uri.SetQueryString(r.Query)
	}
	req.Header.SetBytesV("Accept", hdrJSON)
	if r.Token != "" {
		req.Header.Set("X-Auth-Token", r.Token)
	}
	if r.RequestID != "" {
		req.Header.Set("X-Request-Id", r.RequestID)
	}
	for k, v := range r.Trace {
		if len(v) > 0 {
			req.Header.Set(k, v[0])
		}
	}
	if r.Body != nil {
		if c.side.Dialect == translate.Oscred {
			req.Header.SetContentTypeBytes(hdrOscredJSON)
		} else {
			req.Header.SetContentTypeBytes(hdrJSON)
		}
		req.SetBodyRaw(r.Body)
	}
	resp := fasthttp.AcquireResponse()
	deadline := time.Now().Add(c.timeout)
	hc := c.hc
	if !c.tr.resendable(req) {
		// A request that may not go out twice never goes out on a reused
		// connection: that races the server's close, and the check before
		// reuse cannot see a FIN still on its way. A connection of its own
		// costs a handshake; only creates toward oscred and IBM get here, and
		// a user makes few (two keys at most).
		req.SetConnectionClose()
		hc = c.fresh
	}
	resent, err := c.roundTrip(hc, req, resp, deadline)
	if resent && err == nil && resp.StatusCode() == http.StatusConflict && req.Header.IsPost() {
		if a, ok := c.readBack(r); ok {
			fasthttp.ReleaseResponse(resp)
			return a, nil
		}
	}
	for i := 0; i < 2 && err == nil && resp.StatusCode() == http.StatusNotFound && c.listRace(req); i++ {
		_, err = c.roundTrip(c.hc, req, resp, deadline)
	}
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		return Answer{}, c.transportError(err)
	}
	return Answer{Status: resp.StatusCode(), Body: resp.Body(), resp: resp}, nil
}

// roundTrip sends req on hc and, when it found a kept connection dead before
// any answer byte, once more on a fresh one within the same deadline (resent
// says so); see transport.resendable for why only requests that cannot change
// the outcome twice get that far. Every ask of a call goes through here.
func (c *Client) roundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) (resent bool, err error) {
	if err = hc.DoDeadline(req, resp, deadline); err == nil || !isStale(err) {
		return false, err
	}
	req.SetConnectionClose()
	return true, c.fresh.DoDeadline(req, resp, deadline)
}

// readBack: a Keystone create resent after its answer was lost (the only POST
// ever resent, see transport.resendable) collided with itself — Keystone's 409
// says the first copy was carried out. The key is read back and, when it is
// the one sent (same owner, access and secret), answered as created, so the
// client is not told a create failed that made its key. Anything else keeps
// the 409: a key of that access that is not the one sent is not shown. Both
// sides are read by translate.ParseAnswer, the reader the client's answer is
// then rendered from, so what is compared is what would be shown.
func (c *Client) readBack(r Request) (Answer, bool) {
	if c.side != translate.SideKeystone {
		return Answer{}, false
	}
	sent, ok := translate.ParseAnswer(c.side, r.Body)
	if !ok || sent.Access == "" || sent.Secret == "" {
		return Answer{}, false
	}
	a, err := c.Do(Request{Method: http.MethodGet, Path: KeyPath(c.side, c.side.ID(sent.Access)), Token: r.Token, RequestID: r.RequestID, Trace: r.Trace})
	if err != nil {
		return Answer{}, false
	}
	got, ok := translate.ParseAnswer(c.side, a.Body)
	if !ok || a.Status != http.StatusOK || got.UserID != sent.UserID || got.Access != sent.Access || got.Secret != sent.Secret {
		a.Release()
		return Answer{}, false
	}
	a.Status = http.StatusCreated
	return a, true
}

// listRace: req is a list of Keystone's credentials. Keystone answers one 404
// when a credential it listed is deleted before it reads it again to check the
// caller may see it (keystone/api/credentials.py, _list_credentials: the
// get_credential there lets CredentialNotFound through; seen 7 times in 1,000
// mixed operations from four callers). A list cannot be not found: Do asks
// again, twice at most.
func (c *Client) listRace(req *fasthttp.Request) bool {
	return c.side == translate.SideKeystone && req.Header.IsGet() &&
		string(req.URI().Path()) == c.prefix+BasePath(translate.SideKeystone)
}

// connDropped: the connection was closed or reset under the exchange (fasthttp
// reports any failure before the first answer byte as io.EOF, and
// ErrConnectionClosed to the caller).
func connDropped(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// transportError is the client's error for a call that got no answer; the
// cause (dial refused, reset, the address) stays on it for the access line.
func (c *Client) transportError(err error) *translate.Error {
	peer := c.peer
	var e *translate.Error
	switch {
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		e = translate.ErrUnavailable("every " + peer + " connection stayed busy; retry shortly")
	case errors.Is(err, fasthttp.ErrTimeout):
		e = translate.ErrTimeout(peer + " did not answer in time")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e = translate.ErrBadGateway(peer + " answer too large")
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			e = translate.ErrTimeout(peer + " did not answer in time")
		} else {
			e = translate.ErrBadGateway(peer + " unreachable")
		}
	}
	return e.WithCause(err)
}

// SideOf maps a config's dialect and flavor to a side.
func SideOf(dialect, flavor string) translate.Side {
	switch {
	case dialect == "oscred":
		return translate.SideOscred
	case flavor == "keystone":
		return translate.SideKeystone
	}
	return translate.SideIBM
}

// Hostname is the backend's host without the port.
func (c *Client) Hostname() string {
	h, _, err := net.SplitHostPort(c.hc.Addr)
	if err != nil {
		return c.hc.Addr
	}
	return h
}

// Port is the backend's port number.
func (c *Client) Port() int {
	_, p, _ := net.SplitHostPort(c.hc.Addr)
	n, _ := strconv.Atoi(p)
	return n
}
