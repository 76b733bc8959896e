// Package fixed starts the benchmarks' upstream: a real HTTP server on a
// loopback socket that answers every request with one fixed JSON body. It is
// fasthttp's server rather than net/http's so that a benchmark of the bridge
// counts the bridge's allocations and CPU, not its fixture's (net/http's
// server allocates ~29 times per request; this one does not allocate).
package fixed

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// Server is a running fixed-answer server.
type Server struct {
	URL  string
	n    atomic.Int64
	last atomic.Pointer[string]
}

// Requests is how many requests it answered.
func (s *Server) Requests() int64 { return s.n.Load() }

// Last is the method, path and body of a recent request, sampled ("" before any).
func (s *Server) Last() string {
	if p := s.last.Load(); p != nil {
		return *p
	}
	return ""
}

// Start serves answer (as application/json, status 200) on 127.0.0.1 until tb ends.
func Start(tb testing.TB, answer string) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{URL: "http://" + ln.Addr().String()}
	body := []byte(answer)
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if s.n.Add(1)%1024 == 1 { // a sample, not every request: the fixture stays allocation-free
			l := string(c.Method()) + " " + string(c.Path()) + " " + string(c.PostBody())
			s.last.Store(&l)
		}
		c.SetContentType("application/json")
		c.SetBody(body)
	}}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Shutdown() })
	return s
}
