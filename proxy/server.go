// Package proxy is the bridge's HTTP edge: echo routes for both dialects, input
// checks, policy, the upstream call, and rendering of every answer and error in
// the client's dialect. It wires translate (pure) and policy (no dialects).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/telemetry"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Deps are the parts the server is built from; nil fields get defaults.
type Deps struct {
	Validator policy.Validator
	Rules     *policy.Rules
	Tokens    upstream.TokenSource
	// Owners caches key owners (nil: in process, entries living cache.ttl).
	Owners OwnerStore
	Log    *slog.Logger
	Now    func() time.Time
	// Telemetry: tracing and metrics (nil: metrics only, tracing off).
	Telemetry *telemetry.Telemetry
	// AccessLog, when set, receives the access lines directly, encoded by hand
	// (the same JSON shape slog writes, at a fraction of the cost); nil: through Log.
	AccessLog io.Writer
	// Mirror is told of the primary's writes and reads (migration); nil: off.
	Mirror Mirror
}

// Server answers clients of both dialects in front of one upstream.
type Server struct {
	e    *echo.Echo
	up   *upstream.Client
	side translate.Side
	// idn forwards identity look-ups (nil when identity.lookups is off).
	idn       *upstream.Client
	validator policy.Validator
	rules     *policy.Rules
	tokens    upstream.TokenSource
	owners    OwnerStore
	seen      *seenKeys
	maxBody   int64
	log       *slog.Logger
	now       func() time.Time
	tel       *telemetry.Telemetry
	accessOut io.Writer
	mirror    Mirror
	// publicURL is the bridge's base URL for clients (no trailing slash);
	// links is its Keystone credentials collection, for links.self.
	publicURL, links string
	inflight         atomic.Int64
	maxFlight        int64
}

// UpstreamSide maps the config's dialect and flavor to a side.
func UpstreamSide(u config.Upstream) translate.Side { return upstream.SideOf(u.Dialect, u.Flavor) }

// New builds the server from a validated config.
func New(cfg *config.Config, d Deps) (*Server, error) {
	if d.Validator == nil {
		return nil, errors.New("proxy: a token validator is required")
	}
	if d.Rules == nil {
		r, err := policy.Compile(cfg.Policy)
		if err != nil {
			return nil, err
		}
		d.Rules = r
	}
	if d.Tokens == nil {
		d.Tokens = upstream.Passthrough{}
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Owners == nil {
		d.Owners = policy.NewLocalOwnerCache(cfg.Cache.TTL)
	}
	if d.Telemetry == nil {
		t, err := telemetry.New(nil, false, "")
		if err != nil {
			return nil, err
		}
		d.Telemetry = t
	}
	side := UpstreamSide(cfg.Upstream)
	up, err := upstream.New(upstream.Options{Peer: "upstream", Side: side, URL: cfg.Upstream.URL, Timeout: cfg.Upstream.Timeout, MaxConns: cfg.Upstream.MaxConns})
	if err != nil {
		return nil, fmt.Errorf("upstream.url: %v", err)
	}
	s := &Server{
		up:        up,
		side:      side,
		validator: d.Validator,
		rules:     d.Rules,
		tokens:    d.Tokens,
		owners:    d.Owners,
		seen:      newSeenKeys(),
		maxBody:   cfg.Limits.MaxBodyBytes,
		log:       d.Log,
		now:       d.Now,
		tel:       d.Telemetry,
		accessOut: d.AccessLog,
		maxFlight: int64(cfg.Limits.MaxConcurrent),
		mirror:    d.Mirror,
		publicURL: publicURL(cfg.PublicURL, cfg.Listen),
	}
	s.links = s.publicURL + upstream.BasePath(translate.SideKeystone)
	if cfg.Identity.Lookups == policy.LookupsForward {
		if s.idn, err = upstream.New(upstream.Options{Peer: "identity service", Side: translate.SideKeystone, URL: cfg.Identity.URL, Timeout: cfg.Identity.Timeout, MaxConns: identityLookupConns}); err != nil {
			return nil, fmt.Errorf("identity.url: %v", err)
		}
	}
	s.e = s.routes()
	return s, nil
}

// publicURL is the configured public URL, else one made from the listen address.
func publicURL(configured, listen string) string {
	if configured != "" {
		return strings.TrimRight(configured, "/")
	}
	return "http://" + listen
}

// identityLookupConns bounds the connections for identity look-ups (a CLI's
// occasional reads, not a hot path).
const identityLookupConns = 64

// Handler is the client-facing HTTP handler.
func (s *Server) Handler() http.Handler { return s.e }

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.routeError
	for _, side := range []translate.Side{translate.SideOscred, translate.SideIBM, translate.SideKeystone} {
		base := upstream.BasePath(side)
		update := http.MethodPatch
		if side == translate.SideOscred {
			update = http.MethodPut
		}
		e.Add(http.MethodPost, base, s.route(side, translate.OpCreate))
		e.Add(http.MethodGet, base, s.route(side, translate.OpList))
		e.Add(http.MethodGet, base+"/:id", s.route(side, translate.OpGet))
		e.Add(update, base+"/:id", s.route(side, translate.OpUpdate))
		e.Add(http.MethodDelete, base+"/:id", s.route(side, translate.OpDelete))
	}
	e.Add(http.MethodPost, "/v3.0/OS-CREDENTIAL/securitytokens",
		s.aside("credbridge securitytokens", translate.SideOscred, translate.OpNone, s.securityTokens))
	if s.idn != nil {
		for _, kind := range []string{"users", "projects"} {
			e.Add(http.MethodGet, "/v3/"+kind, s.aside("credbridge lookup "+kind, translate.SideKeystone, translate.OpList,
				func(k *call) *translate.Error { return s.serveLookup(k, kind, false) }))
			e.Add(http.MethodGet, "/v3/"+kind+"/:id", s.aside("credbridge lookup "+kind, translate.SideKeystone, translate.OpGet,
				func(k *call) *translate.Error { return s.serveLookup(k, kind, true) }))
		}
	}
	return e
}

// sideOfPath guesses the client's dialect for requests no route matched.
func sideOfPath(p string) translate.Side {
	switch {
	case strings.HasPrefix(p, "/v3.0/"):
		return translate.SideOscred
	case strings.HasPrefix(p, "/v3/"):
		return translate.SideKeystone
	}
	return translate.SideIBM
}

// routeError renders echo's own errors (no route, wrong method, panics) in the
// dialect the path suggests.
func (s *Server) routeError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	side := sideOfPath(c.Request().URL.Path)
	var he *echo.HTTPError
	e := &translate.Error{Status: 500, Code: translate.CodeInternal, Message: "internal error"}
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			e = translate.ErrNotFound("no such resource: " + c.Request().Method + " " + c.Request().URL.Path)
		case http.StatusMethodNotAllowed:
			e = translate.ErrMethod("method " + c.Request().Method + " is not allowed here")
		default:
			e = &translate.Error{Status: he.Code, Code: translate.CodeInternal, Message: http.StatusText(he.Code)}
		}
	} else {
		s.log.Error("unhandled error", "err", err.Error(), "path", c.Request().URL.Path)
	}
	s.writeError(c, side, requestID(c.Request()), e)
}

var noAnswer upstream.Answer

// call is one client request on its way through the bridge.
type call struct {
	ctx    context.Context
	c      echo.Context
	client translate.Side
	op     translate.Op
	id     string
	body   []byte
	req    translate.Cred
	token  string
	who    *policy.Identity
	reqID  string
	// filters of a list request
	userFilter, projectFilter string
	// warning to answer with (secret dropped)
	warn bool
	// out is the pooled buffer answers are rendered into.
	out []byte
	// err is what the client was told went wrong (for the access log).
	err *translate.Error
	// pspan is the policy span, open from token check to decision; cacheSrc
	// is where the token's answer came from, for that span.
	pspan    trace.Span
	cacheSrc string
	// answers hold upstream buffers until the client has its answer; a request
	// makes at most three upstream calls (resolve, owner look-up, the call).
	answers  [4]upstream.Answer
	nanswers int
}

// keep holds a's buffers until release.
func (k *call) keep(a upstream.Answer) {
	if !a.Held() {
		return
	}
	if k.nanswers == len(k.answers) {
		return // cannot happen today; if it did, the GC takes it (never released while in use)
	}
	k.answers[k.nanswers] = a
	k.nanswers++
}

func (k *call) release() {
	for i := 0; i < k.nanswers; i++ {
		k.answers[i].Release()
		k.answers[i] = upstream.Answer{}
	}
	k.nanswers = 0
}

// endPolicy closes the policy span with the decision, once.
func (k *call) endPolicy(allowed bool, rule string) {
	if k.pspan == nil {
		return
	}
	d := "deny"
	if allowed {
		d = "allow"
	}
	// One SetAttributes call: each one grows the span's attribute slice.
	if k.cacheSrc != "" {
		k.pspan.SetAttributes(attribute.String("credbridge.cache", k.cacheSrc),
			attribute.String("credbridge.decision", d), attribute.String("credbridge.rule", rule))
	} else {
		k.pspan.SetAttributes(attribute.String("credbridge.decision", d), attribute.String("credbridge.rule", rule))
	}
	k.pspan.End()
	k.pspan = nil
}

// serverSpan starts the request's server span when tracing is on (nil when
// off), continuing the caller's trace.
func (s *Server) serverSpan(k *call, name string, attrs ...attribute.KeyValue) trace.Span {
	if !s.tel.Tracing {
		return nil
	}
	r := k.c.Request()
	// The caller's trace continues; its baggage does not (a client must not be
	// able to put headers on the bridge's calls to its backends).
	k.ctx = baggage.ContextWithoutBaggage(s.tel.Propagator.Extract(k.ctx, propagation.HeaderCarrier(r.Header)))
	// All attributes at the start, in one slice: a later SetAttributes would
	// grow the span's slice again.
	all := append([]attribute.KeyValue{attribute.String("http.request.method", r.Method),
		attribute.String("http.route", k.c.Path()), attribute.String("credbridge.client_dialect", k.client.String())}, attrs...)
	var span trace.Span
	k.ctx, span = s.tel.Tracer.Start(k.ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(all...))
	return span
}

func endServerSpan(k *call, span trace.Span, status int) {
	if span == nil {
		return
	}
	k.endPolicy(false, "")
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// aside serves a request that is not one of the five key operations
// (temporary keys, identity look-ups): a server span, the error rendered in
// the client's dialect, an access line. op only labels the access line.
func (s *Server) aside(name string, side translate.Side, op translate.Op, serve func(k *call) *translate.Error) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		k := call{ctx: r.Context(), c: c, client: side, op: op, id: c.Param("id"), reqID: requestID(r)}
		span := s.serverSpan(&k, name)
		if err := serve(&k); err != nil {
			k.err = err
			s.writeError(c, side, k.reqID, err)
		}
		status := c.Response().Status
		endServerSpan(&k, span, status)
		s.accessLog(&k, status, time.Since(start))
		k.release()
		return nil
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (s *Server) route(side translate.Side, op translate.Op) echo.HandlerFunc {
	spanName := "credbridge " + op.String()
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		in, out := bufPool.Get().(*[]byte), bufPool.Get().(*[]byte)
		k := call{ctx: r.Context(), c: c, client: side, op: op, id: c.Param("id"), reqID: requestID(r), out: (*out)[:0]}
		var span trace.Span
		if s.tel.Tracing { // checked here too: the attributes would be built (and allocated) anyway
			span = s.serverSpan(&k, spanName, attribute.String("credbridge.upstream_dialect", s.side.String()),
				attribute.String("credbridge.op", op.String()))
		}
		s.tel.Metrics.Begin()
		var err *translate.Error
		if n := s.inflight.Add(1); n > s.maxFlight {
			c.Response().Header()["Retry-After"] = []string{"1"}
			err = translate.ErrUnavailable("too many requests in flight; retry shortly")
		} else {
			err = s.serve(&k, (*in)[:0])
		}
		s.inflight.Add(-1)
		if err != nil {
			k.err = err
			s.writeError(c, side, k.reqID, err)
		}
		status, d := c.Response().Status, time.Since(start)
		s.tel.Metrics.End(k.ctx, side, s.side, op, status, d)
		endServerSpan(&k, span, status)
		s.accessLog(&k, status, d)
		k.release()
		*in = k.body[:0]
		*out = k.out[:0]
		if cap(*in) <= 64<<10 {
			bufPool.Put(in)
		}
		if cap(*out) <= 64<<10 {
			bufPool.Put(out)
		}
		return nil
	}
}

// accessLog writes one line per request: never a token, a body or a secret.
func (s *Server) accessLog(k *call, status int, d time.Duration) {
	if !s.log.Enabled(k.ctx, slog.LevelInfo) {
		return
	}
	r := k.c.Request()
	if s.accessOut != nil {
		s.writeAccessLine(k, r, status, d)
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs, slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("client_dialect", k.client.String()), slog.String("upstream_dialect", s.side.String()),
		slog.String("op", k.op.String()), slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("request_id", k.reqID))
	if k.who != nil {
		attrs = append(attrs, slog.String("user_id", k.who.UserID))
	}
	if tid := traceID(k.ctx, r); tid != "" {
		attrs = append(attrs, slog.String("trace_id", tid))
	}
	if k.err != nil {
		attrs = append(attrs, slog.String("error", k.err.Detail()))
	}
	s.log.LogAttrs(k.ctx, slog.LevelInfo, "request", attrs...)
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeAccessLine appends the access line by hand: the same fields and shape
// as the slog path above, one Write.
func (s *Server) writeAccessLine(k *call, r *http.Request, status int, d time.Duration) {
	bp := linePool.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = time.Now().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","method":`...)
	b = translate.AppendString(b, r.Method)
	b = append(b, `,"path":`...)
	b = translate.AppendString(b, r.URL.Path)
	b = append(b, `,"client_dialect":"`...)
	b = append(b, k.client.String()...)
	b = append(b, `","upstream_dialect":"`...)
	b = append(b, s.side.String()...)
	b = append(b, `","op":"`...)
	b = append(b, k.op.String()...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"request_id":`...)
	b = translate.AppendString(b, k.reqID)
	if k.who != nil {
		b = append(b, `,"user_id":`...)
		b = translate.AppendString(b, k.who.UserID)
	}
	if tid := traceID(k.ctx, r); tid != "" {
		b = append(b, `,"trace_id":"`...)
		b = append(b, tid...)
		b = append(b, '"')
	}
	if k.err != nil {
		b = append(b, `,"error":`...)
		b = translate.AppendString(b, k.err.Detail())
	}
	b = append(b, "}\n"...)
	_, _ = s.accessOut.Write(b)
	*bp = b
	linePool.Put(bp)
}

// traceID is the request's trace: the bridge's span, else the caller's
// traceparent when tracing is off.
func traceID(ctx context.Context, r *http.Request) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	if tp := r.Header.Get("Traceparent"); len(tp) >= 55 && tp[2] == '-' && isHex(tp[3:35]) {
		return tp[3:35]
	}
	return ""
}

func (s *Server) serve(k *call, buf []byte) *translate.Error {
	if err := s.checkInput(k, buf); err != nil {
		return err
	}
	if err := s.authenticate(k); err != nil {
		return err
	}
	switch k.op {
	case translate.OpCreate:
		return s.create(k)
	case translate.OpList:
		return s.list(k)
	case translate.OpGet:
		return s.get(k)
	case translate.OpUpdate:
		return s.update(k)
	case translate.OpDelete:
		return s.delete(k)
	}
	return translate.ErrNotFound("unknown operation")
}

// authenticate turns the caller's token into an identity: 401 when it is missing
// or invalid, 503 (fail closed) when the identity service cannot say.
func (s *Server) authenticate(k *call) *translate.Error {
	ctx := k.ctx
	if s.tel.Tracing {
		ctx, k.pspan = s.tel.Tracer.Start(k.ctx, "policy")
	}
	var id *policy.Identity
	var err error
	if sv, ok := s.validator.(sourceValidator); ok {
		var src policy.Source
		id, src, err = sv.Lookup(ctx, k.token)
		if k.pspan != nil {
			k.cacheSrc = src.String() // set on the span with the decision
		}
	} else {
		id, err = s.validator.Validate(ctx, k.token)
	}
	switch {
	case err == nil:
		k.who = id
		return nil
	case errors.Is(err, policy.ErrInvalidToken), errors.Is(err, policy.ErrNoToken):
		return translate.ErrUnauthorized("the token is invalid or expired")
	}
	s.log.Warn("identity service unavailable", "err", err.Error())
	return translate.ErrUnavailable("identity service unavailable; try again later")
}

// sourceValidator also says where an identity came from (policy.Cache).
type sourceValidator interface {
	Lookup(ctx context.Context, token string) (*policy.Identity, policy.Source, error)
}

// decide checks the rule for k's operation and records the decision on the
// policy span.
func (s *Server) decide(k *call, owner string) policy.Decision {
	d := s.rules.Decide(k.op.String(), k.who, owner)
	k.endPolicy(d.Allowed, d.Rule)
	return d
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

var (
	ctOscred = "application/json;charset=utf8"
	ctEC2    = "application/json; charset=utf-8"
)

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

// writeError is the one place errors reach a client: its dialect, JSON, always.
func (s *Server) writeError(c echo.Context, side translate.Side, reqID string, e *translate.Error) {
	h := c.Response().Header()
	s.headers(h, side, reqID, noAnswer)
	if e.Code == translate.CodeUnauthorized && side.Dialect == translate.EC2Blob {
		h["Www-Authenticate"] = []string{`Keystone uri="/v3"`}
	}
	ct := ctEC2
	if side.Dialect == translate.Oscred {
		ct = ctOscred
	}
	_ = c.Blob(e.StatusFor(side), ct, translate.AppendError(make([]byte, 0, 256), side, e))
}

// reply writes a success answer (or a same-dialect upstream answer) to the client.
func (s *Server) reply(k *call, status int, body []byte, from upstream.Answer) *translate.Error {
	h := k.c.Response().Header()
	s.headers(h, k.client, k.reqID, from)
	if k.warn {
		h["Warning"] = []string{`299 - "secret not changed: upstream cannot change secrets"`}
	}
	if status == http.StatusNoContent || len(body) == 0 {
		return noErr(k.c.NoContent(status))
	}
	ct := ctEC2
	if k.client.Dialect == translate.Oscred {
		ct = ctOscred
	}
	return noErr(k.c.Blob(status, ct, body))
}

// noErr drops write errors: the client went away and there is no one to tell.
func noErr(error) *translate.Error { return nil }
