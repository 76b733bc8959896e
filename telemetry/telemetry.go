// Package telemetry sets up OpenTelemetry for the bridge: traces configured by
// the standard OTEL_* variables only (none set: no tracer, near-zero cost), and
// metrics through the OTel SDK exported as Prometheus text.
//
// The hot path allocates nothing and takes no lock: a request's labels find
// their series in a copy-on-write table (see Labels), its count is one atomic
// add that an observable counter reads at scrape time, and its two latency
// histograms are atomics collected straight into the Prometheus registry
// (hist: ~10x cheaper than the SDK's histogram Record). The rest goes through
// the OTel SDK. The package knows nothing of dialects or operations: callers
// name them.
package telemetry

import (
	"context"
	"errors"
	"net/http"
	"os"
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	// Meter makes instruments of other packages (migrate) on the same exporter.
	Meter metric.Meter
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

// Options say how to build telemetry; the zero value is metrics only.
type Options struct {
	// Exporter receives spans; nil (or autoexport's "none") turns tracing off.
	Exporter sdktrace.SpanExporter
	// Sync exports each span as it ends (tests); otherwise spans are batched.
	Sync bool
	// Version and Commit are the build's (cmd's main.version, main.commit):
	// service.version and credbridge_build_info. Empty: "dev", "unknown".
	Version, Commit string
	// Getenv reads OTEL_PROPAGATORS (nil: os.Getenv).
	Getenv func(string) string
}

// Setup configures telemetry from the environment: the span exporter from the
// OTEL_* variables (see Enabled), the rest from o.
func Setup(ctx context.Context, o Options) (*Telemetry, error) {
	if Enabled(os.Getenv) {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, err
		}
		o.Exporter = exp
	}
	return New(o)
}

// New builds telemetry from o.
func New(o Options) (*Telemetry, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	prop, err := Propagators(o.Getenv("OTEL_PROPAGATORS"))
	if err != nil {
		return nil, err
	}
	t := &Telemetry{Propagator: prop, TracerProvider: noop.NewTracerProvider()}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceVersion(orDefault(o.Version, "dev")), attribute.String("service.component", "credbridge")))
	if err != nil {
		res = resource.Default()
	}
	if o.Exporter != nil && !autoexport.IsNoneSpanExporter(o.Exporter) {
		opt := sdktrace.WithBatcher(o.Exporter)
		if o.Sync {
			opt = sdktrace.WithSyncer(o.Exporter)
		}
		// The sampler comes from OTEL_TRACES_SAMPLER(_ARG), parent-based by default.
		tp := sdktrace.NewTracerProvider(opt, sdktrace.WithResource(res))
		t.TracerProvider, t.Tracing = tp, true
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	t.Tracer = t.TracerProvider.Tracer("github.com/credbridge/credbridge")
	if err := t.setupMetrics(res, o); err != nil {
		return nil, err
	}
	return t, nil
}

// setupMetrics builds the meter provider and the Prometheus registry /metrics
// serves: the OTel instruments, Go runtime and process collectors, build info.
func (t *Telemetry) setupMetrics(res *resource.Resource, o Options) error {
	reg := prometheus.NewRegistry()
	if err := errors.Join(
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
		reg.Register(buildInfo(o.Version, o.Commit)),
	); err != nil {
		return err
	}
	pe, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(pe), sdkmetric.WithResource(res))
	t.shutdown = append(t.shutdown, mp.Shutdown)
	t.Meter = mp.Meter("github.com/credbridge/credbridge")
	if t.Metrics, err = newMetrics(t.Meter, reg); err != nil {
		return err
	}
	t.MetricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return nil
}

// buildInfo is credbridge_build_info{version,commit,goversion} 1, the
// Prometheus convention for joining a build onto other series.
func buildInfo(version, commit string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "credbridge_build_info",
		Help: "Always 1; the labels say which build is running",
		ConstLabels: prometheus.Labels{"version": orDefault(version, "dev"), "commit": orDefault(commit, "unknown"),
			"goversion": runtime.Version()},
	}, func() float64 { return 1 })
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Shutdown flushes spans and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
