package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/credbridge/credbridge/translate"
)

// maxAnswerBytes bounds an upstream answer; a list of keys is small, anything
// larger is garbage.
const maxAnswerBytes = 4 << 20

// upstream is the pooled HTTP client toward the backend.
type upstream struct {
	side    translate.Side
	base    string
	hc      *http.Client
	timeout time.Duration
}

// answer is what the upstream said.
type answer struct {
	status int
	body   []byte
	header http.Header
}

func defaultTransport() http.RoundTripper {
	return &http.Transport{
		Proxy:               nil, // a bridge in front of a backend must not wander off to $HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256, // the benchmark runs 32-64 concurrent clients; idle conns are cheap
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
}

func newUpstream(side translate.Side, baseURL string, timeout time.Duration, rt http.RoundTripper) *upstream {
	if rt == nil {
		rt = defaultTransport()
	}
	return &upstream{side: side, base: strings.TrimRight(baseURL, "/"), hc: &http.Client{Transport: rt}, timeout: timeout}
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

// do sends one request. body nil means no body. The token goes in X-Auth-Token;
// extra carries correlation headers (X-Request-Id, trace context).
func (u *upstream) do(ctx context.Context, method, path, query string, body []byte, token string, extra http.Header) (answer, *translate.Error) {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	url := u.base + path
	if query != "" {
		url += "?" + query
	}
	var rd io.Reader
	var sent *sentBody
	if body != nil {
		// The body buffer is pooled by the caller: wait until the transport has
		// closed it (it may write on after the answer arrives) before returning.
		sent = &sentBody{}
		sent.Reset(body)
		sent.wg.Add(1)
		defer sent.wg.Wait()
		rd = sent
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		if sent != nil {
			sent.Close()
		}
		return answer{}, translate.ErrBadGateway("cannot build upstream request")
	}
	if sent != nil {
		req.ContentLength = int64(len(body))
	}
	h := req.Header
	for k, v := range extra {
		h[k] = v
	}
	if body != nil {
		if u.side.Dialect == translate.Oscred {
			h["Content-Type"] = hdrOscredJSON
		} else {
			h["Content-Type"] = hdrJSON
		}
	}
	h["Accept"] = hdrJSON
	h["User-Agent"] = hdrUserAgent
	if token != "" {
		h["X-Auth-Token"] = []string{token}
	}
	resp, err := u.hc.Do(req)
	if err != nil {
		return answer{}, transportError(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return answer{}, transportError(ctx, err)
	}
	if len(b) > maxAnswerBytes {
		return answer{}, translate.ErrBadGateway("upstream answer too large")
	}
	return answer{status: resp.StatusCode, body: b, header: resp.Header}, nil
}

// sentBody is a request body that reports when the transport is done with it.
type sentBody struct {
	bytes.Reader
	wg   sync.WaitGroup
	once sync.Once
}

func (b *sentBody) Close() error {
	b.once.Do(b.wg.Done)
	return nil
}

func transportError(ctx context.Context, err error) *translate.Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return translate.ErrTimeout("upstream did not answer in time")
	}
	return translate.ErrBadGateway("upstream unreachable")
}

var (
	hdrJSON       = []string{"application/json"}
	hdrOscredJSON = []string{"application/json;charset=utf8"}
	hdrUserAgent  = []string{"credbridge"}
)
