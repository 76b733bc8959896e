// Package proxy is the bridge's HTTP edge: echo routes for both dialects, input
// checks, policy, the upstream call, and rendering of every answer and error in
// the client's dialect. It wires translate (pure), policy (no dialects) and
// upstream (the client toward a backend); it reads no config file.
package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/credbridge/credbridge/audit"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/telemetry"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"github.com/labstack/echo/v4"
)

// Options are the settings a server is built with (app makes them from the
// config; see config.Config for each one's default and risk).
type Options struct {
	// Upstream is the backend keys are managed on.
	Upstream upstream.Options
	// Lookups, when set, is the identity service the /v3/users and
	// /v3/projects look-ups are forwarded to (identity.lookups: forward).
	Lookups *upstream.Options
	// MaxBodyBytes bounds a request body; MaxConcurrent the requests in flight.
	MaxBodyBytes  int64
	MaxConcurrent int
	// PublicURL is the bridge's base URL as clients reach it, for Keystone links.
	PublicURL string
	// OwnerTTL is how long key owners are cached in process when Deps.Owners is nil.
	OwnerTTL time.Duration
	// Policy is compiled into the rules when Deps.Rules is nil.
	Policy policy.Config
}

// Deps are the parts the server is built from; nil fields get defaults.
type Deps struct {
	Validator policy.Validator
	Rules     *policy.Rules
	Tokens    upstream.TokenSource
	// Owners caches key owners (nil: in process, entries living Options.OwnerTTL).
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
	// Audit receives one event per key operation and refusal; nil: off.
	Audit *audit.Writer
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
	audit     *audit.Writer
	// publicURL is the bridge's base URL for clients (no trailing slash);
	// links is its Keystone credentials collection, for links.self.
	publicURL, links string
	inflight         atomic.Int64
	maxFlight        int64
}

// New builds the server.
func New(o Options, d Deps) (*Server, error) {
	if err := d.defaults(o); err != nil {
		return nil, err
	}
	up, err := upstream.New(o.Upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream.url: %v", err)
	}
	s := &Server{
		up: up, side: o.Upstream.Side,
		validator: d.Validator, rules: d.Rules, tokens: d.Tokens, owners: d.Owners, mirror: d.Mirror, audit: d.Audit,
		seen: newSeenKeys(), maxBody: o.MaxBodyBytes, maxFlight: int64(o.MaxConcurrent),
		log: d.Log, now: d.Now, tel: d.Telemetry, accessOut: d.AccessLog,
		publicURL: strings.TrimRight(o.PublicURL, "/"),
	}
	s.links = s.publicURL + upstream.BasePath(translate.SideKeystone)
	if o.Lookups != nil {
		if s.idn, err = upstream.New(*o.Lookups); err != nil {
			return nil, fmt.Errorf("identity.url: %v", err)
		}
	}
	s.e = s.routes()
	return s, nil
}

func (d *Deps) defaults(o Options) error {
	if d.Validator == nil {
		return errors.New("proxy: a token validator is required")
	}
	if d.Rules == nil {
		r, err := policy.Compile(o.Policy)
		if err != nil {
			return err
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
		d.Owners = policy.NewLocalOwnerCache(o.OwnerTTL)
	}
	if d.Telemetry == nil {
		t, err := telemetry.New(telemetry.Options{})
		if err != nil {
			return err
		}
		d.Telemetry = t
	}
	return nil
}

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
		s.add(e, http.MethodPost, base, keyRoute(side, translate.OpCreate), s.checked(s.create))
		s.add(e, http.MethodGet, base, keyRoute(side, translate.OpList), s.checked(s.list))
		s.add(e, http.MethodGet, base+"/:id", keyRoute(side, translate.OpGet), s.checked(s.get))
		s.add(e, update, base+"/:id", keyRoute(side, translate.OpUpdate), s.checked(s.update))
		s.add(e, http.MethodDelete, base+"/:id", keyRoute(side, translate.OpDelete), s.checked(s.delete))
	}
	s.add(e, http.MethodPost, "/v3.0/OS-CREDENTIAL/securitytokens",
		route{side: translate.SideOscred, label: "temporary_keys", body: true}, s.securityTokens)
	if s.idn != nil {
		for _, kind := range []string{"users", "projects"} {
			rt := route{side: translate.SideKeystone, label: "lookup"}
			s.add(e, http.MethodGet, "/v3/"+kind, rt, func(k *call) *translate.Error { return s.serveLookup(k, kind, false) })
			s.add(e, http.MethodGet, "/v3/"+kind+"/:id", rt, func(k *call) *translate.Error { return s.serveLookup(k, kind, true) })
		}
	}
	return e
}

// add registers serve for method and path behind the one request wrapper.
func (s *Server) add(e *echo.Echo, method, path string, rt route, serve func(*call) *translate.Error) {
	rt.method, rt.path = method, path
	rt.spanName = method + " " + strings.ReplaceAll(path, ":id", "{id}")
	e.Add(method, path, s.handle(rt, serve))
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

// routeError serves echo's own errors (no route, wrong method, panics) through
// the same wrapper as every route, in the dialect the path suggests.
func (s *Server) routeError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	rt := route{side: sideOfPath(c.Request().URL.Path), label: "none", method: c.Request().Method, spanName: c.Request().Method}
	_ = s.handle(rt, func(k *call) *translate.Error { return routeErr(k, err) })(c)
}

func routeErr(k *call, err error) *translate.Error {
	r := k.c.Request()
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		return (&translate.Error{Status: 500, Code: translate.CodeInternal, Message: "internal error"}).WithCause(err)
	}
	switch he.Code {
	case http.StatusNotFound:
		return translate.ErrNotFound("no such resource: " + r.Method + " " + r.URL.Path)
	case http.StatusMethodNotAllowed:
		return translate.ErrMethod("method " + r.Method + " is not allowed here")
	}
	return &translate.Error{Status: he.Code, Code: translate.CodeInternal, Message: http.StatusText(he.Code)}
}

func (s *Server) same(k *call) bool { return k.client == s.side }
