package telemetry

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
// Those four are atomics collected straight into the Prometheus registry
// (see hist); the rest goes through the OTel SDK.
type Metrics struct {
	inflight atomic.Int64
	requests counters
	server   *table
	client   *table
	hs       histograms
	reqDur   family
	upDur    family
	stdSrv   family
	stdCli   family
	idDur    metric.Float64Histogram
	idOpts   [2][]metric.RecordOption
	cache    atomic.Pointer[CacheCounters]
	conns    atomic.Pointer[ConnCounters]
}

// overflowKey labels the series past maxSeries.
var overflowKey = seriesKey{Labels: Labels{Route: "_OTHER", Method: "_OTHER", ClientDialect: "_OTHER",
	UpstreamDialect: "_OTHER", Op: "_OTHER", Scheme: "http", Peer: "_OTHER"}}

func newMetrics(m metric.Meter, reg prometheus.Registerer) (*Metrics, error) {
	mt := &Metrics{requests: counters{cells: map[[4]string]*cell{}}}
	if err := mt.histograms(m, reg); err != nil {
		return nil, err
	}
	mt.server = newTable(mt.serverSeries, overflowKey)
	mt.client = newTable(mt.clientSeries, overflowKey)
	mt.idOpts[0] = opts(attribute.String("outcome", "ok"))
	mt.idOpts[1] = opts(attribute.String("outcome", "error"))
	return mt, mt.observers(m)
}

func (mt *Metrics) histograms(m metric.Meter, reg prometheus.Registerer) error {
	fam := func(name, help string) family { return family{hs: &mt.hs, name: name, help: help} }
	mt.reqDur = fam("credbridge_request_duration_seconds", "Whole request, as the client sees it, by client dialect, operation and status code")
	mt.upDur = fam("credbridge_upstream_duration_seconds", "One upstream call, by upstream dialect, operation and status code")
	mt.stdSrv = fam("http_server_request_duration_seconds", "Duration of HTTP server requests (OpenTelemetry semantic conventions)")
	mt.stdCli = fam("http_client_request_duration_seconds", "Duration of HTTP client requests toward the upstream (OpenTelemetry semantic conventions)")
	var err error
	mt.idDur, err = m.Float64Histogram("credbridge.identity.duration", metric.WithUnit("s"),
		metric.WithDescription("One identity service validation"), metric.WithExplicitBucketBoundaries(bounds...))
	return errors.Join(err, reg.Register(&mt.hs))
}

func opts(kv ...attribute.KeyValue) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}

func (mt *Metrics) serverSeries(k seriesKey) *series {
	code := codeLabel(k.status)
	std := prometheus.Labels{"http_request_method": k.Method, "url_scheme": k.Scheme}
	if k.Route != "" {
		std["http_route"] = k.Route
	}
	statusLabels(std, k.status)
	return &series{
		count: mt.requests.cell(k.ClientDialect, k.UpstreamDialect, k.Op, code),
		own:   mt.reqDur.series(prometheus.Labels{"client_dialect": k.ClientDialect, "op": k.Op, "code": code}),
		std:   mt.stdSrv.series(std),
	}
}

func (mt *Metrics) clientSeries(k seriesKey) *series {
	host, port := hostPort(k.Peer)
	std := prometheus.Labels{"http_request_method": k.Method, "server_address": host, "server_port": strconv.Itoa(port)}
	statusLabels(std, k.status)
	return &series{
		own: mt.upDur.series(prometheus.Labels{"upstream_dialect": k.UpstreamDialect, "op": k.Op, "code": codeLabel(k.status)}),
		std: mt.stdCli.series(std),
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
// ctx is kept for exemplars; the histograms record none today.
func (m *Metrics) End(_ context.Context, l Labels, status int, d time.Duration) {
	m.inflight.Add(-1)
	l.Peer = ""
	s := m.server.get(seriesKey{normalize(l), status})
	s.count.Add(1)
	s.own.observe(d.Seconds())
	s.std.observe(d.Seconds())
}

// Upstream records one upstream call; status 0 means it got no answer.
func (m *Metrics) Upstream(_ context.Context, l Labels, status int, d time.Duration) {
	l.Route, l.ClientDialect, l.Scheme = "", "", ""
	s := m.client.get(seriesKey{normalize(l), status})
	s.own.observe(d.Seconds())
	s.std.observe(d.Seconds())
}

// Identity records one identity service call.
func (m *Metrics) Identity(ctx context.Context, d time.Duration, ok bool) {
	i := 0
	if !ok {
		i = 1
	}
	m.idDur.Record(ctx, d.Seconds(), m.idOpts[i]...)
}
