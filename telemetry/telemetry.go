// Package telemetry sets up OpenTelemetry for the bridge: traces configured by
// the standard OTEL_* variables only (none set: no tracer, near-zero cost), and
// metrics through the OTel SDK exported as Prometheus text.
//
// Hot-path counters are plain atomics that observable instruments read at
// scrape time, so counting a request costs one atomic add; histograms use the
// SDK with attribute sets computed once.
package telemetry

import (
	"context"
	"errors"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/credbridge/credbridge/translate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Telemetry is the process's tracing and metrics.
type Telemetry struct {
	// Tracing is false when no exporter is configured: callers skip span work.
	Tracing        bool
	TracerProvider trace.TracerProvider
	Tracer         trace.Tracer
	Propagator     propagation.TextMapPropagator
	Metrics        *Metrics
	// MetricsHandler serves Prometheus text.
	MetricsHandler http.Handler
	shutdown       []func(context.Context) error
}

// Enabled reports whether the OTEL_* variables ask for traces.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch v := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); {
	case v == "none":
		return false
	case v != "":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup configures telemetry from the environment.
func Setup(ctx context.Context, version string) (*Telemetry, error) {
	var exp sdktrace.SpanExporter
	if Enabled(os.Getenv) {
		var err error
		if exp, err = autoexport.NewSpanExporter(ctx); err != nil {
			return nil, err
		}
	}
	return New(exp, false, version)
}

// New builds telemetry around exp (nil: tracing off). sync exports each span
// as it ends (tests); otherwise spans are batched.
func New(exp sdktrace.SpanExporter, sync bool, version string) (*Telemetry, error) {
	t := &Telemetry{
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		TracerProvider: noop.NewTracerProvider(),
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceVersion(version), attribute.String("service.component", "credbridge")))
	if err != nil {
		res = resource.Default()
	}
	if exp != nil && !autoexport.IsNoneSpanExporter(exp) {
		opt := sdktrace.WithBatcher(exp)
		if sync {
			opt = sdktrace.WithSyncer(exp)
		}
		// The sampler comes from OTEL_TRACES_SAMPLER(_ARG), parent-based by default.
		tp := sdktrace.NewTracerProvider(opt, sdktrace.WithResource(res))
		t.TracerProvider, t.Tracing = tp, true
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	t.Tracer = t.TracerProvider.Tracer("github.com/credbridge/credbridge")

	reg := prometheus.NewRegistry()
	pe, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(pe), sdkmetric.WithResource(res))
	t.shutdown = append(t.shutdown, mp.Shutdown)
	if t.Metrics, err = newMetrics(mp.Meter("github.com/credbridge/credbridge")); err != nil {
		return nil, err
	}
	t.MetricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return t, nil
}

// Shutdown flushes spans and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// Codes the request counter tells apart; anything else counts as "other".
var codes = []int{200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 501, 502, 503, 504}

const nCodes = 18 // codes + other

func codeIndex(status int) int {
	for i, c := range codes {
		if c == status {
			return i
		}
	}
	return nCodes - 1
}

var sides = []translate.Side{translate.SideOscred, translate.SideIBM, translate.SideKeystone}

func sideIndex(s translate.Side) int {
	for i, x := range sides {
		if x == s {
			return i
		}
	}
	return 0
}

const nOps = 6 // translate.OpNone .. OpDelete

// CacheCounters are read at scrape time; the policy cache's stats satisfy it.
type CacheCounters struct {
	L1Hits, RedisHits, Misses, NegativeHits, RedisErrors, Tampered func() int64
}

// Metrics holds the instruments.
type Metrics struct {
	requests  [3][3][nOps][nCodes]atomic.Int64 // client, upstream, op, code
	inflight  atomic.Int64
	reqDur    metric.Float64Histogram
	upDur     metric.Float64Histogram
	idDur     metric.Float64Histogram
	reqOpts   [3][nOps]metric.RecordOption
	upOpts    [3][nOps]metric.RecordOption
	idOpts    [2]metric.RecordOption
	cache     atomic.Pointer[CacheCounters]
	conns     atomic.Pointer[ConnCounters]
	histogram bool
}

func newMetrics(m metric.Meter) (*Metrics, error) {
	mt := &Metrics{histogram: true}
	buckets := metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
	var err error
	if mt.reqDur, err = m.Float64Histogram("credbridge.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Whole request, as the client sees it"), buckets); err != nil {
		return nil, err
	}
	if mt.upDur, err = m.Float64Histogram("credbridge.upstream.duration", metric.WithUnit("s"),
		metric.WithDescription("One upstream call"), buckets); err != nil {
		return nil, err
	}
	if mt.idDur, err = m.Float64Histogram("credbridge.identity.duration", metric.WithUnit("s"),
		metric.WithDescription("One identity service validation"), buckets); err != nil {
		return nil, err
	}
	for i, s := range sides {
		for op := 1; op < nOps; op++ {
			name := translate.Op(op).String()
			mt.reqOpts[i][op] = metric.WithAttributeSet(attribute.NewSet(attribute.String("client_dialect", s.String()), attribute.String("op", name)))
			mt.upOpts[i][op] = metric.WithAttributeSet(attribute.NewSet(attribute.String("upstream_dialect", s.String()), attribute.String("op", name)))
		}
	}
	mt.idOpts[0] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "ok")))
	mt.idOpts[1] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "error")))

	// Observed at scrape time; a failure to register any is the one error returned.
	reqs, e1 := m.Int64ObservableCounter("credbridge.requests", metric.WithDescription("Requests by client dialect, upstream dialect, operation and status code"))
	inflight, e2 := m.Int64ObservableUpDownCounter("credbridge.requests.inflight", metric.WithDescription("Requests being served"))
	cache, e3 := m.Int64ObservableCounter("credbridge.cache.lookups", metric.WithDescription("Token cache lookups by level that answered: l1, redis, miss (identity service), negative"))
	redisErrs, e4 := m.Int64ObservableCounter("credbridge.redis.errors", metric.WithDescription("Failed Redis commands (the bridge serves on without Redis)"))
	tampered, e5 := m.Int64ObservableCounter("credbridge.cache.rejected_entries", metric.WithDescription("Redis entries that failed verification (tampered or foreign)"))
	connsOpen, e6 := m.Int64ObservableUpDownCounter("credbridge.connections.open", metric.WithDescription("Client connections open, idle keep-alive ones included (capped by limits.max_conns)"))
	waited, e7 := m.Int64ObservableCounter("credbridge.connections.waited", metric.WithDescription("New client connections that found limits.max_conns reached and waited for a slot"))
	reclaimed, e8 := m.Int64ObservableCounter("credbridge.connections.reclaimed", metric.WithDescription("Idle client connections closed to make room for new ones at limits.max_conns"))
	procs, e9 := m.Int64ObservableGauge("credbridge.gomaxprocs", metric.WithDescription("Cores the Go runtime may run on (runtime.gomaxprocs, else Go's choice)"))
	if err := errors.Join(e1, e2, e3, e4, e5, e6, e7, e8, e9); err != nil {
		return nil, err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(procs, int64(runtime.GOMAXPROCS(0)))
		if cc := mt.conns.Load(); cc != nil {
			o.ObserveInt64(connsOpen, cc.Open())
			o.ObserveInt64(waited, cc.Waited())
			o.ObserveInt64(reclaimed, cc.Reclaimed())
		}
		for c := range sides {
			for u := range sides {
				for op := 1; op < nOps; op++ {
					for code := 0; code < nCodes; code++ {
						n := mt.requests[c][u][op][code].Load()
						if n == 0 {
							continue
						}
						label := "other"
						if code < len(codes) {
							label = itoa(codes[code])
						}
						o.ObserveInt64(reqs, n, metric.WithAttributes(
							attribute.String("client_dialect", sides[c].String()), attribute.String("upstream_dialect", sides[u].String()),
							attribute.String("op", translate.Op(op).String()), attribute.String("code", label)))
					}
				}
			}
		}
		o.ObserveInt64(inflight, mt.inflight.Load())
		if cc := mt.cache.Load(); cc != nil {
			for _, l := range []struct {
				name string
				f    func() int64
			}{{"l1", cc.L1Hits}, {"redis", cc.RedisHits}, {"miss", cc.Misses}, {"negative", cc.NegativeHits}} {
				o.ObserveInt64(cache, l.f(), metric.WithAttributes(attribute.String("level", l.name)))
			}
			o.ObserveInt64(redisErrs, cc.RedisErrors())
			o.ObserveInt64(tampered, cc.Tampered())
		}
		return nil
	}, reqs, inflight, cache, redisErrs, tampered, procs, connsOpen, waited, reclaimed)
	return mt, err
}

func itoa(n int) string {
	var b [4]byte
	i := len(b)
	for n > 0 || i == len(b) {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// ConnCounters are read at scrape time; app fills them from the client
// listener's cap (internal/connlimit).
type ConnCounters struct {
	Open, Waited, Reclaimed func() int64
}

// SetConns points the connection counters at the client listener.
func (m *Metrics) SetConns(c *ConnCounters) { m.conns.Store(c) }

// SetCache points the cache counters at a cache's stats.
func (m *Metrics) SetCache(c *CacheCounters) { m.cache.Store(c) }

// Begin counts a request in flight.
func (m *Metrics) Begin() { m.inflight.Add(1) }

// End records a finished request.
func (m *Metrics) End(ctx context.Context, client, upstream translate.Side, op translate.Op, status int, d time.Duration) {
	m.inflight.Add(-1)
	if op <= translate.OpNone || int(op) >= nOps {
		return
	}
	c := sideIndex(client)
	m.requests[c][sideIndex(upstream)][op][codeIndex(status)].Add(1)
	m.reqDur.Record(ctx, d.Seconds(), m.reqOpts[c][op])
}

// Upstream records one upstream call.
func (m *Metrics) Upstream(ctx context.Context, upstream translate.Side, op translate.Op, d time.Duration) {
	if op <= translate.OpNone || int(op) >= nOps {
		return
	}
	m.upDur.Record(ctx, d.Seconds(), m.upOpts[sideIndex(upstream)][op])
}

// Identity records one identity service call.
func (m *Metrics) Identity(ctx context.Context, d time.Duration, ok bool) {
	i := 0
	if !ok {
		i = 1
	}
	m.idDur.Record(ctx, d.Seconds(), m.idOpts[i])
}
