package telemetry

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Labels name one request (End) or one upstream call (Upstream). Every field
// is a small, closed set chosen by the bridge — never a client's raw input —
// and the package caps the distinct tuples it keeps (maxSeries) all the same,
// so a caller's mistake cannot grow the scrape without bound.
type Labels struct {
	// Route is the matched route template (echo's c.Path()); "" when no route
	// matched (a 404), so http.route is left off as the semantic conventions say.
	Route string
	// Method is the HTTP method; anything but the nine standard ones is
	// counted as "_OTHER" (a client picks it).
	Method string
	// ClientDialect and UpstreamDialect are translate.Side names.
	ClientDialect, UpstreamDialect string
	// Op is create|list|get|update|delete|temporary_keys|lookup; "" counts as "none".
	Op string
	// Scheme is url.scheme of the client request (End); "" means "http".
	Scheme string
	// Peer is the server an upstream call went to (Upstream), as a base URL or
	// host:port; it becomes server.address and server.port.
	Peer string
}

// maxSeries caps the distinct label tuples (times status codes) each table
// keeps; past it, new tuples are counted in one overflow series.
const maxSeries = 2048

// seriesKey is a table's key: the labels after normalisation, and the status.
type seriesKey struct {
	Labels
	status int
}

// series is what one key records into, built once on the first request that
// has it: the hot path only looks it up.
type series struct {
	count *atomic.Int64 // credbridge_requests_total's cell (nil for upstream calls)
	own   *hist         // credbridge_*_duration_seconds
	std   *hist         // http_*_request_duration_seconds
}

// table maps keys to series. Reads are one atomic load and a map lookup (no
// lock, no allocation); a new key copies the map under mu (rare: the set of
// routes, dialects and codes is small).
type table struct {
	mu       sync.Mutex
	m        atomic.Pointer[map[seriesKey]*series]
	build    func(seriesKey) *series
	overflow *series
}

func newTable(build func(seriesKey) *series, overflow seriesKey) *table {
	t := &table{build: build}
	m := map[seriesKey]*series{}
	t.m.Store(&m)
	t.overflow = build(overflow)
	return t
}

func (t *table) get(k seriesKey) *series {
	if s, ok := (*t.m.Load())[k]; ok {
		return s
	}
	return t.add(k)
}

func (t *table) add(k seriesKey) *series {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.m.Load()
	if s, ok := old[k]; ok {
		return s
	}
	if len(old) >= maxSeries {
		return t.overflow
	}
	m := make(map[seriesKey]*series, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	s := t.build(k)
	m[k] = s
	t.m.Store(&m)
	return s
}

// counters are credbridge_requests_total's cells, one per (client, upstream,
// op, code) whatever the route or method, read at scrape time.
type counters struct {
	mu    sync.Mutex
	cells map[[4]string]*cell
}

type cell struct {
	n     atomic.Int64
	attrs metric.ObserveOption
}

func (c *counters) cell(client, upstream, op, code string) *atomic.Int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := [4]string{client, upstream, op, code}
	if x, ok := c.cells[k]; ok {
		return &x.n
	}
	x := &cell{attrs: metric.WithAttributeSet(attribute.NewSet(attribute.String("client_dialect", client),
		attribute.String("upstream_dialect", upstream), attribute.String("op", op), attribute.String("code", code)))}
	c.cells[k] = x
	return &x.n
}

func (c *counters) observe(f func(n int64, attrs metric.ObserveOption)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.cells {
		if n := x.n.Load(); n != 0 {
			f(n, x.attrs)
		}
	}
}

// normalize bounds what a caller passes before it becomes a key.
func normalize(l Labels) Labels {
	l.Method = method(l.Method)
	if l.Op == "" {
		l.Op = "none"
	}
	if l.Scheme != "https" {
		l.Scheme = "http"
	}
	return l
}

// method keeps the nine standard methods and folds the rest into "_OTHER"
// (OTel HTTP semantic conventions): a client must not mint label values.
func method(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return m
	}
	return "_OTHER"
}

// Codes the credbridge_* series tell apart by their code label; any other
// status counts as "other" there (the semconv series carry the number).
var codes = []int{200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 501, 502, 503, 504}

func codeLabel(status int) string {
	for _, c := range codes {
		if c == status {
			return strconv.Itoa(c)
		}
	}
	return "other"
}

// statusLabels add http.response.status_code (absent when there was no
// answer) and error.type: the status for a 5xx, "_OTHER" when the call got no
// answer at all (status 0).
func statusLabels(l prometheus.Labels, status int) {
	switch {
	case status <= 0:
		l["error_type"] = "_OTHER"
		return
	case status >= 500:
		l["error_type"] = strconv.Itoa(status)
	}
	l["http_response_status_code"] = strconv.Itoa(status)
}

// hostPort splits a base URL or host:port into server.address and server.port.
func hostPort(peer string) (string, int) {
	if u, err := url.Parse(peer); err == nil && u.Host != "" {
		port, _ := strconv.Atoi(u.Port())
		if port == 0 {
			port = 80
			if u.Scheme == "https" {
				port = 443
			}
		}
		return u.Hostname(), port
	}
	h, p, err := net.SplitHostPort(peer)
	if err != nil {
		return peer, 0
	}
	port, _ := strconv.Atoi(p)
	return h, port
}

// Scheme is url.scheme of a request the bridge serves.
func Scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
