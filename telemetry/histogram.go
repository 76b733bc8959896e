package telemetry

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// bounds are the request histograms' bucket upper bounds, in seconds:
// sub-millisecond resolution, since the bridge adds well under a millisecond.
// The semconv histograms use them too (semconv's advice starts at 5 ms, which
// would put every request of a healthy bridge in one bucket).
var bounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// hist is one histogram series kept in atomics: an observation is a search
// over 14 bounds and three atomic operations, no lock and no allocation. The
// request path records four per request (two families, server and client),
// which through the OTel SDK cost ~250 ns each (its attribute handling).
type hist struct {
	desc    *prometheus.Desc
	buckets [15]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum     atomic.Uint64     // float64 bits
}

func (h *hist) observe(v float64) {
	h.buckets[sort.SearchFloat64s(bounds, v)].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// metric is the series as Prometheus reads it (nil before any observation).
func (h *hist) metric() prometheus.Metric {
	cum := make(map[float64]uint64, len(bounds))
	var n uint64
	for i, b := range bounds {
		n += h.buckets[i].Load()
		cum[b] = n
	}
	if n += h.buckets[len(bounds)].Load(); n == 0 {
		return nil
	}
	m, err := prometheus.NewConstHistogram(h.desc, n, math.Float64frombits(h.sum.Load()), cum)
	if err != nil {
		return nil // a label value that is not UTF-8: dropped, not a failed scrape
	}
	return m
}

// histograms collects every hist. It is an unchecked collector (Describe
// sends nothing) because series of one family carry different label names:
// the semantic conventions leave out an attribute that does not apply
// (http.route when no route matched, the status code when no answer came),
// and so did the OTel exporter these series used to come from.
type histograms struct {
	mu    sync.Mutex
	all   []*hist
	byKey map[string]*hist // family name and labels → its one series
}

func (hs *histograms) Describe(chan<- *prometheus.Desc) {}

func (hs *histograms) Collect(ch chan<- prometheus.Metric) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, h := range hs.all {
		if m := h.metric(); m != nil {
			ch <- m
		}
	}
}

// family names one histogram family.
type family struct {
	hs         *histograms
	name, help string
}

// series is the family's series for labels, made on first use: many label
// tuples of the request table share one (the credbridge_* families do not
// tell routes or methods apart).
func (f family) series(labels prometheus.Labels) *hist {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	key := f.name
	for _, k := range names {
		key += "\xff" + k + "=" + labels[k]
	}
	f.hs.mu.Lock()
	defer f.hs.mu.Unlock()
	if h, ok := f.hs.byKey[key]; ok {
		return h
	}
	if f.hs.byKey == nil {
		f.hs.byKey = map[string]*hist{}
	}
	h := &hist{desc: prometheus.NewDesc(f.name, f.help, nil, labels)}
	f.hs.byKey[key] = h
	f.hs.all = append(f.hs.all, h)
	return h
}
