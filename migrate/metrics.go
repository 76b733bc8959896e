package migrate

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// metrics are migration.md's "Surfaces" instruments. Counters are the SDK's
// (nothing here is on the client's path but the journal append); the journal
// gauges are observed at scrape time from the worker's last reading, so a
// scrape never waits for Redis or the bbolt file.
type metrics struct {
	compared, divergences, applied metric.Int64Counter
	dropped, journalErrs           metric.Int64Counter
	pending, oldestMs              atomic.Int64
}

func newMetrics(m metric.Meter) (*metrics, error) {
	if m == nil {
		m = noop.NewMeterProvider().Meter("")
	}
	mt := &metrics{}
	var e [7]error
	mt.compared, e[0] = m.Int64Counter("credbridge.migration.compared", metric.WithDescription("Shadow comparisons by operation and result (match, diverged)"))
	mt.divergences, e[1] = m.Int64Counter("credbridge.migration.divergences", metric.WithDescription("Divergences found, by kind"))
	mt.applied, e[2] = m.Int64Counter("credbridge.migration.applied", metric.WithDescription("Journal entries applied to the secondary, by operation and outcome (done, retry, failed)"))
	mt.dropped, e[3] = m.Int64Counter("credbridge.migration.shadow.dropped", metric.WithDescription("Shadow reads dropped because the queue was full"))
	pending, e4 := m.Int64ObservableGauge("credbridge.migration.journal.pending", metric.WithDescription("Mirror writes waiting for the secondary"))
	oldest, e5 := m.Float64ObservableGauge("credbridge.migration.journal.oldest", metric.WithUnit("s"), metric.WithDescription("Age of the oldest pending mirror write"))
	mt.journalErrs, e[6] = m.Int64Counter("credbridge.migration.journal.errors", metric.WithDescription("Primary writes that could not be journaled (not replicated; the client still got the primary's answer)"))
	e[4], e[5] = e4, e5
	if err := errors.Join(e[:]...); err != nil {
		return nil, err
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(pending, mt.pending.Load())
		o.ObserveFloat64(oldest, mt.oldestAge().Seconds())
		return nil
	}, pending, oldest)
	return mt, err
}

// oldestAge is the age of the oldest pending entry at the last reading (0: none).
func (mt *metrics) oldestAge() time.Duration {
	ms := mt.oldestMs.Load()
	if ms == 0 {
		return 0
	}
	return time.Since(time.UnixMilli(ms))
}

func (mt *metrics) setStats(n int64, oldest time.Time) {
	mt.pending.Store(n)
	if oldest.IsZero() || n == 0 {
		mt.oldestMs.Store(0)
	} else {
		mt.oldestMs.Store(oldest.UnixMilli())
	}
}

func (mt *metrics) apply(ctx context.Context, op, outcome string) {
	mt.applied.Add(ctx, 1, metric.WithAttributes(attribute.String("op", op), attribute.String("outcome", outcome)))
}
