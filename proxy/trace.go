package proxy

import (
	"context"
	"net/http"
	"strconv"

	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// serverSpan starts the request's server span when tracing is on (nil when
// off), continuing the caller's trace. Names and attributes follow the
// OpenTelemetry HTTP server conventions, plus the bridge's own.
func (s *Server) serverSpan(k *call) trace.Span {
	if !s.tel.Tracing {
		return nil
	}
	r := k.c.Request()
	// The caller's trace continues; its baggage does not (a client must not be
	// able to put headers on the bridge's calls to its backends).
	k.ctx = baggage.ContextWithoutBaggage(s.tel.Propagator.Extract(k.ctx, propagation.HeaderCarrier(r.Header)))
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// All attributes at the start, in one slice: a later SetAttributes would
	// grow the span's slice again.
	attrs := []attribute.KeyValue{attribute.String("http.request.method", r.Method),
		attribute.String("url.scheme", scheme), attribute.String("url.path", r.URL.Path),
		attribute.String("credbridge.client_dialect", k.client.String()),
		attribute.String("credbridge.upstream_dialect", s.side.String()),
		attribute.String("credbridge.op", k.rt.opLabel())}
	if k.rt.path != "" {
		attrs = append(attrs, attribute.String("http.route", k.rt.path))
	}
	var span trace.Span
	k.ctx, span = s.tel.Tracer.Start(k.ctx, k.rt.spanName, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	return span
}

func endServerSpan(k *call, span trace.Span, status int) {
	if span == nil {
		return
	}
	k.endPolicy(false, "")
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// clientSpan starts the span of a call to a backend (nil with tracing off).
// A lean span instead of otelhttp's transport wrapper: on this hot path the
// wrapper's body wrapping and attribute sets cost more than the translation
// itself (BenchmarkBridgePatchB2A in package app measures it).
func (s *Server) clientSpan(k *call, to *upstream.Client, method, path string) (context.Context, trace.Span) {
	if !s.tel.Tracing {
		return k.ctx, nil
	}
	return s.tel.Tracer.Start(k.ctx, method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("url.full", to.Base()+path),
			attribute.String("server.address", to.Hostname()), attribute.Int("server.port", to.Port())))
}

func endClientSpan(span trace.Span, status int, err *translate.Error) {
	if span == nil {
		return
	}
	switch {
	case err != nil:
		span.SetAttributes(attribute.String("error.type", err.Code.String()))
		span.SetStatus(codes.Error, err.Message)
	case status >= 400:
		span.SetAttributes(attribute.Int("http.response.status_code", status), attribute.String("error.type", strconv.Itoa(status)))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	default:
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	span.End()
}

// traceHeaders are the trace headers of a call the bridge makes: with tracing
// on, ctx's span as parent; off, the caller's own trace context carried on when
// it is valid W3C (nil when there is none), so a trace still crosses the bridge.
// Nothing else of the client's reaches a backend: not baggage, not an
// oversized or malformed traceparent.
func (s *Server) traceHeaders(k *call, ctx context.Context) http.Header {
	if s.tel.Tracing {
		th := http.Header{}
		s.tel.Propagator.Inject(ctx, propagation.HeaderCarrier(th))
		for name := range th {
			if name != "Traceparent" && name != "Tracestate" {
				delete(th, name) // a configured baggage or vendor propagator
			}
		}
		return th
	}
	in := k.c.Request().Header
	tp := in["Traceparent"]
	if len(tp) != 1 || !translate.ValidTraceparent(tp[0]) {
		return nil
	}
	th := http.Header{"Traceparent": tp}
	if ts := in["Tracestate"]; len(ts) == 1 && translate.ValidTracestate(ts[0]) {
		th["Tracestate"] = ts
	}
	return th
}

// translating opens a span around a translation when tracing is on.
func (s *Server) translating(k *call) func() {
	if !s.tel.Tracing {
		return noop
	}
	_, span := s.tel.Tracer.Start(k.ctx, "translate", trace.WithAttributes(
		attribute.String("credbridge.from", s.side.String()), attribute.String("credbridge.to", k.client.String())))
	return func() { span.End() }
}

func noop() {}

// traceID is the request's trace: the bridge's span, else the caller's
// traceparent when tracing is off (then no span is in the context, and the
// walk up net/http's context chain to find none is skipped).
func (s *Server) traceID(k *call, r *http.Request) string {
	if s.tel.Tracing {
		if sc := trace.SpanContextFromContext(k.ctx); sc.IsValid() {
			return sc.TraceID().String()
		}
	}
	if tp := r.Header.Get("Traceparent"); translate.ValidTraceparent(tp) {
		return tp[3:35]
	}
	return ""
}
