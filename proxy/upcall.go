package proxy

import (
	"time"

	"github.com/credbridge/credbridge/telemetry"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
)

// send calls the upstream with the credentials configured for it.
func (s *Server) send(k *call, method, path, query string, body []byte) (upstream.Answer, *translate.Error) {
	tok, err := s.tokens.UpstreamToken(k.ctx, k.token)
	if err != nil {
		return upstream.Answer{}, translate.ErrUnavailable("cannot obtain upstream credentials; try again later").WithCause(err)
	}
	return s.sendTo(k, s.up, tok, method, path, query, body)
}

// sendOut sends body, rendered into the call's answer buffer k.out: the
// buffer is free again once the request is written (upstream.Request), and
// keeps what it grew to for the answer rendered next.
func (s *Server) sendOut(k *call, method, path string, body []byte) (upstream.Answer, *translate.Error) {
	a, err := s.send(k, method, path, "", body)
	k.out = body[:0]
	return a, err
}

// sendTo calls backend to with token tok, in a client span, and keeps the
// answer's buffers until the client has its answer.
func (s *Server) sendTo(k *call, to *upstream.Client, tok, method, path, query string, body []byte) (upstream.Answer, *translate.Error) {
	reqID := "" // Huawei's services and the identity service read it; ec2blob upstreams do not
	if to != s.up || to.Side().Dialect == translate.Oscred {
		reqID = k.reqID
	}
	ctx, span := s.clientSpan(k, to, method, path)
	start := time.Now()
	a, err := to.Do(upstream.Request{Method: method, Path: path, Query: query, Body: body, Token: tok, RequestID: reqID, Trace: s.traceHeaders(k, ctx)})
	if to == s.up {
		s.tel.Metrics.Upstream(k.ctx, telemetry.Labels{Method: method, UpstreamDialect: s.side.String(), Op: k.rt.opLabel(), Peer: to.Base()}, a.Status, time.Since(start))
	}
	endClientSpan(span, a.Status, err)
	k.keep(a)
	return a, err
}

func (s *Server) keyPath(upID string) string { return upstream.KeyPath(s.side, upID) }
