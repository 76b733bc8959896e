package telemetry

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// CacheCounters are read at scrape time; the policy cache's stats satisfy it.
type CacheCounters struct {
	L1Hits, RedisHits, Misses, NegativeHits, RedisErrors, Tampered func() int64
}

// ConnCounters are read at scrape time; app fills them from the client
// listener's cap (internal/connlimit).
type ConnCounters struct {
	Open, Waited, Reclaimed func() int64
}

// Metrics holds the instruments. Each request records into two histograms:
// the bridge's own (credbridge_request_duration_seconds, kept for the
// dashboards that scrape it) and the OpenTelemetry HTTP semantic conventions'
// (http_server_request_duration_seconds); upstream calls likewise
// (credbridge_upstream_duration_seconds, http_client_request_duration_seconds).
type Metrics struct {
	inflight atomic.Int64
	requests counters
	server   *table
	client   *table
	reqDur   metric.Float64Histogram
	upDur    metric.Float64Histogram
	stdSrv   metric.Float64Histogram
	stdCli   metric.Float64Histogram
	idDur    metric.Float64Histogram
	idOpts   [2][]metric.RecordOption
	cache    atomic.Pointer[CacheCounters]
	conns    atomic.Pointer[ConnCounters]
}

// overflowKey labels the series past maxSeries.
var overflowKey = seriesKey{Labels: Labels{Route: "_OTHER", Method: "_OTHER", ClientDialect: "_OTHER",
	UpstreamDialect: "_OTHER", Op: "_OTHER", Scheme: "http", Peer: "_OTHER"}}

func newMetrics(m metric.Meter) (*Metrics, error) {
	mt := &Metrics{requests: counters{cells: map[[4]string]*cell{}}}
	if err := mt.histograms(m); err != nil {
		return nil, err
	}
	mt.server = newTable(mt.serverSeries, overflowKey)
	mt.client = newTable(clientSeries, overflowKey)
	mt.idOpts[0] = opts(attribute.String("outcome", "ok"))
	mt.idOpts[1] = opts(attribute.String("outcome", "error"))
	return mt, mt.observers(m)
}

func (mt *Metrics) histograms(m metric.Meter) error {
	// Sub-millisecond resolution: the bridge adds well under a millisecond.
	// The semconv histograms use the same boundaries (their advice starts at
	// 5 ms, which would put every request of a healthy bridge in one bucket).
	buckets := metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
	var errs []error
	h := func(name, desc string) metric.Float64Histogram {
		x, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), buckets)
		errs = append(errs, err)
		return x
	}
	mt.reqDur = h("credbridge.request.duration", "Whole request, as the client sees it, by client dialect, operation and status code")
	mt.upDur = h("credbridge.upstream.duration", "One upstream call, by upstream dialect, operation and status code")
	mt.idDur = h("credbridge.identity.duration", "One identity service validation")
	mt.stdSrv = h("http.server.request.duration", "Duration of HTTP server requests (OpenTelemetry semantic conventions)")
	mt.stdCli = h("http.client.request.duration", "Duration of HTTP client requests toward the upstream (OpenTelemetry semantic conventions)")
	return errors.Join(errs...)
}

func opts(kv ...attribute.KeyValue) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}

func (mt *Metrics) serverSeries(k seriesKey) *series {
	code := codeLabel(k.status)
	std := append([]attribute.KeyValue{attribute.String("http.request.method", k.Method),
		attribute.String("url.scheme", k.Scheme)}, statusAttr(k.status)...)
	if k.Route != "" {
		std = append(std, attribute.String("http.route", k.Route))
	}
	if et, ok := errorType(k.status); ok {
		std = append(std, attribute.String("error.type", et))
	}
	return &series{
		count: mt.requests.cell(k.ClientDialect, k.UpstreamDialect, k.Op, code),
		own:   opts(attribute.String("client_dialect", k.ClientDialect), attribute.String("op", k.Op), attribute.String("code", code)),
		std:   opts(std...),
	}
}

func clientSeries(k seriesKey) *series {
	host, port := hostPort(k.Peer)
	std := append([]attribute.KeyValue{attribute.String("http.request.method", k.Method),
		attribute.String("server.address", host), attribute.Int("server.port", port)}, statusAttr(k.status)...)
	if et, ok := errorType(k.status); ok {
		std = append(std, attribute.String("error.type", et))
	}
	return &series{
		own: opts(attribute.String("upstream_dialect", k.UpstreamDialect), attribute.String("op", k.Op),
			attribute.String("code", codeLabel(k.status))),
		std: opts(std...),
	}
}

// observers registers what is read at scrape time; a failure to register any
// is the one error returned.
func (mt *Metrics) observers(m metric.Meter) error {
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
		return err
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(procs, int64(runtime.GOMAXPROCS(0)))
		o.ObserveInt64(inflight, mt.inflight.Load())
		mt.requests.observe(func(n int64, attrs metric.ObserveOption) { o.ObserveInt64(reqs, n, attrs) })
		if cc := mt.conns.Load(); cc != nil {
			o.ObserveInt64(connsOpen, cc.Open())
			o.ObserveInt64(waited, cc.Waited())
			o.ObserveInt64(reclaimed, cc.Reclaimed())
		}
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
	return err
}

// SetConns points the connection counters at the client listener.
func (m *Metrics) SetConns(c *ConnCounters) { m.conns.Store(c) }

// SetCache points the cache counters at a cache's stats.
func (m *Metrics) SetCache(c *CacheCounters) { m.cache.Store(c) }

// Begin counts a request in flight; every Begin is followed by one End.
func (m *Metrics) Begin() { m.inflight.Add(1) }

// End records a finished request: every route, 404s and 405s included.
func (m *Metrics) End(ctx context.Context, l Labels, status int, d time.Duration) {
	m.inflight.Add(-1)
	l.Peer = ""
	s := m.server.get(seriesKey{normalize(l), status})
	s.count.Add(1)
	sec := d.Seconds()
	m.reqDur.Record(ctx, sec, s.own...)
	m.stdSrv.Record(ctx, sec, s.std...)
}

// Upstream records one upstream call; status 0 means it got no answer.
func (m *Metrics) Upstream(ctx context.Context, l Labels, status int, d time.Duration) {
	l.Route, l.ClientDialect, l.Scheme = "", "", ""
	s := m.client.get(seriesKey{normalize(l), status})
	sec := d.Seconds()
	m.upDur.Record(ctx, sec, s.own...)
	m.stdCli.Record(ctx, sec, s.std...)
}

// Identity records one identity service call.
func (m *Metrics) Identity(ctx context.Context, d time.Duration, ok bool) {
	i := 0
	if !ok {
		i = 1
	}
	m.idDur.Record(ctx, d.Seconds(), m.idOpts[i]...)
}
