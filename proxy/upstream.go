package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/credbridge/credbridge/translate"
	"github.com/valyala/fasthttp"
)

// maxAnswerBytes bounds an upstream answer; a list of keys is small, anything
// larger is garbage.
const maxAnswerBytes = 4 << 20

// upstream is the pooled client toward the backend. It is fasthttp's HostClient
// rather than net/http's Transport: net/http hands every request to a write-loop
// and a read-loop goroutine and flushed our request head and body in two
// writes; HostClient writes the request in one go and reads the answer on the
// caller's goroutine. On the benchmark's B2A path this was the largest single
// cost after the syscalls themselves (docs/performance.md).
type upstream struct {
	side    translate.Side
	base    string // scheme://host[:port], for span attributes
	prefix  string // the URL's path, prepended to dialect paths
	host    string
	scheme  string
	hc      *fasthttp.HostClient
	timeout time.Duration
	// peer names it in error messages ("upstream", "identity service").
	peer string
}

// answer is what the upstream said. body and header stay valid until the
// handler releases the call (call.release).
type answer struct {
	status int
	body   []byte
	resp   *fasthttp.Response
}

// header returns an answer header ("" when absent or no answer).
func (a answer) header(name string) string {
	if a.resp == nil {
		return ""
	}
	return string(a.resp.Header.Peek(name))
}

func newUpstream(peer string, side translate.Side, baseURL string, timeout time.Duration, maxConns int) (*upstream, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, err
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[u.Scheme == "https"])
	}
	hc := &fasthttp.HostClient{
		Addr:      addr,
		Name:      "credbridge",
		IsTLS:     u.Scheme == "https",
		TLSConfig: &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12},
		MaxConns:  maxConns,
		// Past MaxConns a request waits for a free connection (within the
		// call's deadline) instead of failing at once.
		MaxConnWaitTimeout:            timeout,
		MaxIdleConnDuration:           90 * time.Second,
		ReadTimeout:                   timeout,
		WriteTimeout:                  timeout,
		MaxResponseBodySize:           maxAnswerBytes,
		DisablePathNormalizing:        true, // paths are built from checked ids
		DisableHeaderNamesNormalizing: false,
		NoDefaultUserAgentHeader:      true,
		// Retry only requests that cannot have changed anything twice, and only
		// when the connection failed before an answer (a stale keep-alive).
		MaxIdemponentCallAttempts: 2,
		RetryIfErr: func(req *fasthttp.Request, attempts int, err error) (bool, bool) {
			m := string(req.Header.Method())
			idempotent := m == http.MethodGet || m == http.MethodDelete || m == http.MethodPut
			return false, idempotent && attempts < 2 && connDropped(err)
		},
		Dial: func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, 5*time.Second) },
	}
	return &upstream{
		side: side, base: u.Scheme + "://" + u.Host, prefix: strings.TrimRight(u.Path, "/"),
		host: u.Host, scheme: u.Scheme, hc: hc, timeout: timeout, peer: peer,
	}, nil
}

// BasePath is the collection path of a side.
func BasePath(s translate.Side) string {
	switch s {
	case translate.SideOscred:
		return "/v3.0/OS-CREDENTIAL/credentials"
	case translate.SideKeystone:
		return "/v3/credentials"
	}
	return "/credentials"
}

var (
	hdrJSON       = []byte("application/json")
	hdrOscredJSON = []byte("application/json;charset=utf8")
)

// do sends one request and waits for the answer. body nil means no body; the
// body buffer may be reused once do returns (the request is written by then).
// The answer's resp must be released by the caller (fasthttp.ReleaseResponse).
func (u *upstream) do(method, path, query string, body []byte, token, reqID string, trace http.Header) (answer, *translate.Error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(method)
	uri := req.URI()
	uri.SetScheme(u.scheme)
	uri.SetHost(u.host) // fasthttp writes the Host header from the URI
	uri.SetPath(u.prefix + path)
	if query != "" {
		uri.SetQueryString(query)
	}
	req.Header.SetBytesV("Accept", hdrJSON)
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	if reqID != "" {
		req.Header.Set("X-Request-Id", reqID)
	}
	for k, v := range trace {
		if len(v) > 0 {
			req.Header.Set(k, v[0])
		}
	}
	if body != nil {
		if u.side.Dialect == translate.Oscred {
			req.Header.SetContentTypeBytes(hdrOscredJSON)
		} else {
			req.Header.SetContentTypeBytes(hdrJSON)
		}
		req.SetBodyRaw(body)
	}
	resp := fasthttp.AcquireResponse()
	if err := u.hc.DoDeadline(req, resp, time.Now().Add(u.timeout)); err != nil {
		fasthttp.ReleaseResponse(resp)
		return answer{}, transportError(u.peer, err)
	}
	return answer{status: resp.StatusCode(), body: resp.Body(), resp: resp}, nil
}

// connDropped: the connection closed before any answer (fasthttp reports io.EOF
// to the retry hook and ErrConnectionClosed to the caller).
func connDropped(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func transportError(peer string, err error) *translate.Error {
	switch {
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return translate.ErrUnavailable("every " + peer + " connection stayed busy; retry shortly")
	case errors.Is(err, fasthttp.ErrTimeout):
		return translate.ErrTimeout(peer + " did not answer in time")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return translate.ErrBadGateway(peer + " answer too large")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return translate.ErrTimeout(peer + " did not answer in time")
	}
	return translate.ErrBadGateway(peer + " unreachable")
}
