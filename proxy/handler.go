package proxy

import (
	"sync"
	"time"

	"github.com/credbridge/credbridge/telemetry"
	"github.com/credbridge/credbridge/translate"
	"github.com/labstack/echo/v4"
)

// route is what the request wrapper knows of the route it serves.
type route struct {
	side translate.Side
	// op is the key operation (OpNone for the other routes).
	op translate.Op
	// label names a route that is not a key operation in metrics and the
	// access line: temporary_keys, lookup, none (no route matched).
	label string
	// method and path as registered; spanName is "{method} {route}".
	method, path, spanName string
	// body: the route reads a request body.
	body bool
}

func keyRoute(side translate.Side, op translate.Op) route {
	return route{side: side, op: op, body: op == translate.OpCreate || op == translate.OpUpdate}
}

// opLabel is the op field of metrics and access lines.
func (rt *route) opLabel() string {
	if rt.label != "" {
		return rt.label
	}
	return rt.op.String()
}

var (
	bufPool  = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
	callPool = sync.Pool{New: func() any { return new(call) }}
)

// putBuf returns a pooled buffer unless it grew past what is worth keeping.
func putBuf(p *[]byte, b []byte) {
	if cap(b) <= 64<<10 {
		*p = b[:0]
		bufPool.Put(p)
	}
}

// handle is the one request wrapper: every route, echo's own 404 and 405
// included, gets the concurrency limit, a server span, request metrics, its
// error rendered in the client's dialect, an access line and pooled buffers.
func (s *Server) handle(rt route, serve func(*call) *translate.Error) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		in, out := bufPool.Get().(*[]byte), bufPool.Get().(*[]byte)
		// Pooled: serve is called through a func value, so the call would
		// otherwise escape to the heap on every request.
		k := callPool.Get().(*call)
		*k = call{ctx: r.Context(), c: c, rt: &rt, client: rt.side, op: rt.op, id: c.Param("id"),
			reqID: requestID(r), body: (*in)[:0], out: (*out)[:0]}
		span := s.serverSpan(k)
		s.tel.Metrics.Begin()
		if rt.body {
			k.bodyErr = s.slurp(k) // before the slot: judged in order by checkInput
		}
		err := s.limited(k, serve)
		if err != nil {
			k.err = err
			s.writeError(c, rt.side, k.reqID, err)
		}
		// One clock read for the duration and the access line's time.
		end := time.Now()
		status, d := c.Response().Status, end.Sub(start)
		s.tel.Metrics.End(k.ctx, telemetry.Labels{Route: rt.path, Method: r.Method, ClientDialect: rt.side.String(), UpstreamDialect: s.side.String(), Op: rt.opLabel(), Scheme: telemetry.Scheme(r)}, status, d)
		endServerSpan(k, span, status)
		s.accessLog(k, status, end, d)
		s.auditEvent(k, status) // before release: its strings may point into answers
		k.release()
		putBuf(in, k.body)
		putBuf(out, k.out)
		*k = call{} // nothing of this request lingers in the pool
		callPool.Put(k)
		return nil
	}
}

// limited runs serve unless limits.max_concurrent requests are in flight.
func (s *Server) limited(k *call, serve func(*call) *translate.Error) *translate.Error {
	defer s.inflight.Add(-1)
	if n := s.inflight.Add(1); n > s.maxFlight {
		k.c.Response().Header()["Retry-After"] = retryAfter1[:1:1]
		return translate.ErrUnavailable("too many requests in flight; retry shortly")
	}
	return serve(k)
}
