// Package app assembles a running bridge from a config: the token validator, the
// upstream credentials, the proxy, the client and admin listeners, graceful
// shutdown and live reload. cmd/credbridge only parses flags and calls it.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/credbridge/credbridge/audit"
	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/internal/connlimit"
	"github.com/credbridge/credbridge/migrate"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/telemetry"
	"github.com/credbridge/credbridge/upstream"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// Runtime is a started bridge.
type Runtime struct {
	log     *slog.Logger
	cfg     atomic.Pointer[config.Config]
	started *config.Config // what the listeners were started with
	built   atomic.Pointer[Built]
	opts    Options
	stats   *policy.CacheStats
	health  *proxy.Health
	srv     *http.Server
	admin   *http.Server
	ln      net.Listener
	adminLn net.Listener
	done    chan error
	tls     atomic.Pointer[serverTLS] // nil: plain HTTP
	stop    context.CancelFunc        // ends the identity probe
	// audit is the trail Start opened (nil: off, or the caller's Options.Audit).
	audit *audit.Writer
	// mirrors is the migration's mirror and journal (app/migration.go).
	mirrors *mirrors
}

// Built is what one config makes: the proxy and the token cache it checks with.
type Built struct {
	Proxy    *proxy.Server
	Cache    *policy.Cache
	Identity *policy.IdentityClient
	redis    io.Closer
}

// Close releases the Redis connections.
func (b *Built) Close() {
	if b.redis != nil {
		_ = b.redis.Close()
	}
}

// Build makes the proxy and its cache for cfg. stats outlive reloads so the
// cache metrics stay monotonic.
func Build(cfg *config.Config, o Options, stats *policy.CacheStats) (*Built, error) {
	log, tel := o.Log, o.Telemetry
	sec, err := cfg.Secrets() // read once, by config.Load
	if err != nil {
		return nil, err
	}
	opts := policy.CacheOptions{TTL: cfg.Cache.TTL, LocalTTL: cfg.Cache.LocalTTL, NegativeTTL: cfg.Cache.NegativeTTL, Log: log, Stats: stats, HMACKey: sec.HMACKey}
	idBase, err := policy.NewTransport(cfg.Identity)
	if err != nil {
		return nil, err
	}
	b := &Built{}
	if cfg.Cache.RedisURL != "" {
		rdb, err := policy.NewRedis(cfg.Cache.RedisURL)
		if err != nil {
			return nil, err
		}
		if tel.Tracing {
			if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(tel.TracerProvider)); err != nil {
				return nil, err
			}
		}
		opts.Redis, b.redis = rdb, rdb
	}
	var idTransport http.RoundTripper = idBase
	if tel.Tracing {
		idTransport = otelhttp.NewTransport(idBase, otelhttp.WithFilter(func(r *http.Request) bool { return !policy.IsProbe(r) }),
			otelhttp.WithTracerProvider(tel.TracerProvider), otelhttp.WithPropagators(tel.Propagator),
			otelhttp.WithSpanNameFormatter(func(string, *http.Request) string { return "identity validate" }))
	}
	ic := policy.NewIdentityClient(cfg.Identity, sec.IdentityServiceToken, idTransport)
	ic.Observe = tel.Metrics.Identity
	b.Cache, b.Identity = policy.NewCache(ic, opts), ic
	rules, err := policy.Compile(cfg.Policy)
	if err != nil {
		return nil, err
	}
	tokens := upstreamTokens(cfg, sec, idBase)
	po, err := proxy.OptionsFrom(cfg)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.Proxy, err = proxy.New(po, proxy.Deps{Validator: b.Cache, Owners: b.Cache.Owners(cfg.Upstream.URL), Rules: rules, Tokens: tokens, Log: log, Telemetry: tel, AccessLog: o.AccessLog, Audit: o.Audit, Mirror: o.mirror()})
	if err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// upstreamTokens is the token upstream.auth sends: the caller's (passthrough),
// a static one, or a Keystone service login over rt (identity.tls's transport).
func upstreamTokens(cfg *config.Config, sec *config.Secrets, rt http.RoundTripper) upstream.TokenSource {
	switch cfg.Upstream.Auth.Mode {
	case "token":
		return upstream.StaticToken(sec.UpstreamToken)
	case "keystone":
		ks := cfg.Upstream.Auth.Keystone
		return upstream.NewKeystoneLogin(upstream.Account{URL: ks.URL, UserName: ks.UserName, UserDomain: ks.UserDomain, ProjectID: ks.ProjectID}, sec.KeystonePassword, cfg.Identity.Timeout, rt)
	}
	return upstream.Passthrough{}
}

// Options are the process-wide parts a runtime uses; they outlive reloads.
type Options struct {
	Log *slog.Logger
	// Telemetry (nil: metrics only, no tracing).
	Telemetry *telemetry.Telemetry
	// AccessLog receives access lines encoded by hand (nil: through Log).
	AccessLog io.Writer
	// Audit receives the audit trail (nil: Start opens cfg.Audit's).
	Audit     *audit.Writer
	migration *migrate.Mirror // app/migration.go
}

// Start listens on cfg's addresses and serves until Shutdown.
func Start(cfg *config.Config, o Options) (*Runtime, error) {
	log, tel := o.Log, o.Telemetry
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if tel == nil {
		var err error
		if tel, err = telemetry.New(telemetry.Options{}); err != nil {
			return nil, err
		}
	}
	stats := &policy.CacheStats{}
	tel.Metrics.SetCache(&telemetry.CacheCounters{
		L1Hits: stats.L1Hits.Load, RedisHits: stats.RedisHits.Load, Misses: stats.Misses.Load,
		NegativeHits: stats.NegativeHits.Load, RedisErrors: stats.RedisErrors.Load, Tampered: stats.Tampered.Load,
	})
	o.Log, o.Telemetry = log, tel
	var trail *audit.Writer
	if o.Audit == nil {
		var err error
		if trail, err = audit.Open(cfg.Audit); err != nil {
			return nil, err
		}
		o.Audit = trail
	}
	ms := &mirrors{}
	var err error
	if o.migration, err = ms.build(cfg, o); err != nil {
		_ = trail.Close()
		return nil, err
	}
	b, err := Build(cfg, o, stats)
	if err != nil {
		_ = trail.Close()
		return nil, errors.Join(err, (&Runtime{mirrors: ms}).stopMigration(context.Background()))
	}
	r := &Runtime{log: log, opts: o, stats: stats, health: proxy.NewHealth(), done: make(chan error, 2), audit: trail, mirrors: ms}
	r.cfg.Store(cfg)
	r.started = cfg
	r.built.Store(b)
	r.health.AddCheck("redis", func() error { return r.built.Load().Cache.Check() })
	r.health.AddCheck("identity", func() error { return r.built.Load().Identity.Check() })
	r.switchMirror(o.migration, cfg)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		b.Close()
		_ = trail.Close()
		return nil, fmt.Errorf("listen: %v", err)
	}
	capped := connlimit.New(ln, cfg.Limits.MaxConns)
	if r.ln, err = r.wrapTLS(capped, cfg.TLS); err != nil {
		b.Close()
		ln.Close()
		return nil, err
	}
	tel.Metrics.SetConns(&telemetry.ConnCounters{
		Open:      func() int64 { return int64(capped.Open()) },
		Waited:    capped.Waited,
		Reclaimed: capped.Reclaimed,
	})
	if r.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		b.Close()
		r.ln.Close()
		_ = trail.Close()
		return nil, fmt.Errorf("admin_listen: %v", err)
	}
	r.srv = &http.Server{
		Handler:        http.HandlerFunc(r.serve),
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState:      tlsConnState(capped.ConnState),
	}
	SetClientTimeouts(r.srv, cfg.Upstream.Timeout)
	r.admin = &http.Server{Handler: r.adminRoutes(proxy.AdminHandler(r.health, tel.MetricsHandler, cfg.Debug.PProf)), ReadHeaderTimeout: 5 * time.Second}
	go func() { r.done <- serveErr(r.srv.Serve(r.ln)) }()
	go func() { r.done <- serveErr(r.admin.Serve(r.adminLn)) }()
	var probeCtx context.Context
	probeCtx, r.stop = context.WithCancel(context.Background())
	go r.probeIdentity(probeCtx, identityProbeEvery)
	log.Info("credbridge serving", "listen", r.ln.Addr().String(), "admin_listen", r.adminLn.Addr().String(),
		"upstream", proxy.UpstreamSide(cfg.Upstream).String(), "upstream_url", cfg.Upstream.URL,
		"tls", cfg.TLS.Enabled(), "mtls", cfg.TLS.ClientCAFile != "")
	return r, nil
}

func serveErr(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (r *Runtime) serve(w http.ResponseWriter, req *http.Request) {
	r.built.Load().Proxy.Handler().ServeHTTP(w, req)
}

// Addr is the client listener's address; AdminAddr the admin listener's.
func (r *Runtime) Addr() string      { return r.ln.Addr().String() }
func (r *Runtime) AdminAddr() string { return r.adminLn.Addr().String() }

// Health is the readiness tracker.
func (r *Runtime) Health() *proxy.Health { return r.health }

// Done reports a listener failing.
func (r *Runtime) Done() <-chan error { return r.done }

// Reload swaps in a new config: every key a build reads applies at once. A
// config that does not build is refused and the old one keeps serving. Keys
// read only when the listeners start keep their old value; Reload logs them by
// name so an operator knows to restart.
func (r *Runtime) Reload(cfg *config.Config) error {
	o, opened := r.opts, r.mirrors.journal == nil
	if !r.mirrors.same(cfg) {
		var err error
		if o.migration, err = r.mirrors.build(cfg, o); err != nil {
			r.mirrors.discard(opened)
			return err
		}
	}
	b, err := Build(cfg, o, r.stats)
	if err == nil {
		if err = r.reloadTLS(cfg.TLS); err != nil { // last: refused, nothing of cfg applies
			b.Close()
		}
	}
	if err != nil {
		r.mirrors.discard(opened)
		return err
	}
	old := r.built.Swap(b)
	r.cfg.Store(cfg)
	r.opts = o
	r.switchMirror(o.migration, cfg)
	// Requests in flight may still use the old Redis client; close it after them.
	time.AfterFunc(cfg.ShutdownTimeout, old.Close)
	if keys := RestartNeeded(r.started, cfg); len(keys) > 0 {
		r.log.Warn("config reloaded; these keys keep their old value until a restart", "keys", keys)
	}
	return nil
}

// startOnly are the keys read once, when the listeners start.
var startOnly = []struct {
	key     string
	changed func(started, next *config.Config) bool
}{
	{"listen", func(a, b *config.Config) bool { return a.Listen != b.Listen }},
	{"admin_listen", func(a, b *config.Config) bool { return a.AdminListen != b.AdminListen }},
	{"limits.max_conns", func(a, b *config.Config) bool { return a.Limits.MaxConns != b.Limits.MaxConns }},
	{"debug.pprof", func(a, b *config.Config) bool { return a.Debug.PProf != b.Debug.PProf }},
	{"audit.file", func(a, b *config.Config) bool { return a.Audit != b.Audit }}, // opened once, at start
	// The journal is opened once; a reload's mirror keeps using it.
	{"migration.journal", func(a, b *config.Config) bool { return a.Migration.Journal != b.Migration.Journal }},
	// Upstream calls take a new timeout at once, but the client connections'
	// write timeout (timeout + 30s) is the listener's: a longer one can cut
	// answers until a restart.
	{"upstream.timeout", func(a, b *config.Config) bool { return b.Upstream.Timeout > a.Upstream.Timeout }},
}

// RestartNeeded names the keys whose value in next differs from the one the
// listeners started with.
func RestartNeeded(started, next *config.Config) []string {
	var keys []string
	for _, k := range startOnly {
		if k.changed(started, next) {
			keys = append(keys, k.key)
		}
	}
	return keys
}

// Shutdown marks the bridge not ready, stops accepting, and lets in-flight
// requests finish within the context's deadline.
func (r *Runtime) Shutdown(ctx context.Context) error {
	r.health.ShuttingDown()
	r.stop()
	err := r.srv.Shutdown(ctx)
	aerr := r.admin.Shutdown(ctx)
	r.built.Load().Close()
	// After the servers: the last requests' events are in the buffer by now.
	return errors.Join(err, aerr, r.stopMigration(ctx), r.audit.Close())
}

// ShutdownTimeout is the configured drain time.
func (r *Runtime) ShutdownTimeout() time.Duration { return r.cfg.Load().ShutdownTimeout }

// SetClientTimeouts gives the client-facing server its bounds on slow clients:
// 10 s for a request's header, 30 s for all of it, the upstream's timeout plus
// 30 s to write the answer, 120 s idle between requests. Without them one
// client holds a connection and a goroutine for as long as it likes
// (slowloris); with them net/http arms and clears socket deadlines on every
// request, which bench/floor.sh's floor-nethttp-timeouts line prices.
func SetClientTimeouts(srv *http.Server, upstreamTimeout time.Duration) {
	srv.ReadHeaderTimeout = 10 * time.Second
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = upstreamTimeout + 30*time.Second
	srv.IdleTimeout = 120 * time.Second
}
