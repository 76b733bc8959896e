package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestEnabledOnlyByOTELVariables(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, false},
		{map[string]string{"OTEL_SERVICE_NAME": "credbridge"}, false},
	}
	for _, tc := range tests {
		if got := Enabled(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Fatalf("%v: %v", tc.env, got)
		}
	}
	tel, err := New(Options{})
	if err != nil || tel.Tracing {
		t.Fatalf("no exporter must mean no tracing: %v %v", err, tel.Tracing)
	}
}

func scrape(t *testing.T, tel *Telemetry) string {
	t.Helper()
	w := httptest.NewRecorder()
	tel.MetricsHandler.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(w.Body)
	return string(body)
}

func mustContain(t *testing.T, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Fatalf("missing %s in\n%s", w, body)
		}
	}
}

var deleteKey = Labels{Route: "/v3/credentials/:id", Method: "DELETE", ClientDialect: "ec2blob-keystone", UpstreamDialect: "oscred", Op: "delete"}

func TestMetricsExposition(t *testing.T) {
	tel, err := New(Options{Version: "v1.2.3", Commit: "abc123"})
	if err != nil {
		t.Fatal(err)
	}
	m := tel.Metrics
	var l1 int64 = 7
	m.SetCache(&CacheCounters{L1Hits: func() int64 { return l1 }, RedisHits: zero, Misses: zero, NegativeHits: zero, RedisErrors: func() int64 { return 3 }, Tampered: zero})
	for _, status := range []int{204, 418} {
		m.Begin()
		m.End(context.Background(), deleteKey, status, time.Millisecond)
	}
	body := scrape(t, tel)
	mustContain(t, body,
		`credbridge_requests_total{client_dialect="ec2blob-keystone",code="204",op="delete",upstream_dialect="oscred"} 1`,
		`credbridge_requests_total{client_dialect="ec2blob-keystone",code="other",op="delete",upstream_dialect="oscred"} 1`,
		`credbridge_request_duration_seconds_count{client_dialect="ec2blob-keystone",code="204",op="delete"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="DELETE",http_response_status_code="204",http_route="/v3/credentials/:id",url_scheme="http"} 1`,
		`credbridge_cache_lookups_total{level="l1"} 7`,
		`credbridge_redis_errors_total 3`,
		`credbridge_requests_inflight 0`,
		fmt.Sprintf("credbridge_gomaxprocs %d\n", runtime.GOMAXPROCS(0)),
		fmt.Sprintf(`credbridge_build_info{commit="abc123",goversion=%q,version="v1.2.3"} 1`, runtime.Version()),
		"\ngo_goroutines ", "\ngo_memstats_alloc_bytes ", "\nprocess_cpu_seconds_total ", "\nprocess_resident_memory_bytes ",
	)
}

// TestEveryRouteCounted: a 404 (no route), a 405 with a made-up method,
// temporary keys and look-ups all reach the counter and both histograms.
func TestEveryRouteCounted(t *testing.T) {
	tel, _ := New(Options{})
	m := tel.Metrics
	ctx := context.Background()
	for _, c := range []struct {
		l      Labels
		status int
	}{
		{Labels{Method: "GET", ClientDialect: "ec2blob-ibm", UpstreamDialect: "oscred"}, 404},
		{Labels{Route: "/credentials", Method: "BREW", ClientDialect: "ec2blob-ibm", UpstreamDialect: "oscred"}, 405},
		{Labels{Route: "/v3.0/OS-CREDENTIAL/securitytokens", Method: "POST", ClientDialect: "oscred", UpstreamDialect: "oscred", Op: "temporary_keys"}, 201},
		{Labels{Route: "/v3/users/:id", Method: "GET", ClientDialect: "ec2blob-keystone", UpstreamDialect: "oscred", Op: "lookup"}, 502},
	} {
		m.Begin()
		m.End(ctx, c.l, c.status, time.Millisecond)
	}
	mustContain(t, scrape(t, tel),
		`credbridge_requests_total{client_dialect="ec2blob-ibm",code="404",op="none",upstream_dialect="oscred"} 1`,
		`credbridge_requests_total{client_dialect="ec2blob-ibm",code="405",op="none",upstream_dialect="oscred"} 1`,
		`credbridge_requests_total{client_dialect="oscred",code="201",op="temporary_keys",upstream_dialect="oscred"} 1`,
		`credbridge_requests_total{client_dialect="ec2blob-keystone",code="502",op="lookup",upstream_dialect="oscred"} 1`,
		// No route matched: no http.route (semantic conventions); a made-up method is _OTHER.
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",url_scheme="http"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="_OTHER",http_response_status_code="405",http_route="/credentials",url_scheme="http"} 1`,
		`http_server_request_duration_seconds_count{error_type="502",http_request_method="GET",http_response_status_code="502",http_route="/v3/users/:id",url_scheme="http"} 1`,
		`credbridge_requests_inflight 0`,
	)
}

func TestUpstreamSeries(t *testing.T) {
	tel, _ := New(Options{})
	m := tel.Metrics
	up := Labels{Method: "PUT", UpstreamDialect: "oscred", Op: "update", Peer: "http://127.0.0.1:26001"}
	m.Upstream(context.Background(), up, 200, time.Millisecond)
	up.Peer = "https://iam.example"
	m.Upstream(context.Background(), up, 0, time.Millisecond)
	mustContain(t, scrape(t, tel),
		`credbridge_upstream_duration_seconds_count{code="200",op="update",upstream_dialect="oscred"} 1`,
		`http_client_request_duration_seconds_count{http_request_method="PUT",http_response_status_code="200",server_address="127.0.0.1",server_port="26001"} 1`,
		// No answer: no status code, error.type set.
		`http_client_request_duration_seconds_count{error_type="_OTHER",http_request_method="PUT",server_address="iam.example",server_port="443"} 1`,
	)
}

// TestSeriesCapped: a caller that passed client-chosen strings by mistake
// still cannot grow the scrape past maxSeries; the rest lands in _OTHER.
func TestSeriesCapped(t *testing.T) {
	tel, _ := New(Options{})
	m := tel.Metrics
	for i := 0; i < maxSeries+50; i++ {
		m.Begin()
		m.End(context.Background(), Labels{Route: fmt.Sprintf("/r%d", i), Method: "GET", Op: "get"}, 200, time.Millisecond)
	}
	if n := len(*m.server.m.Load()); n != maxSeries {
		t.Fatalf("%d series kept, want %d", n, maxSeries)
	}
	mustContain(t, scrape(t, tel), `credbridge_requests_total{client_dialect="_OTHER",code="other",op="_OTHER",upstream_dialect="_OTHER"} 50`)
}

// TestHotPathDoesNotAllocate: once a label tuple has been seen, recording it
// allocates nothing (the request path is hot).
func TestHotPathDoesNotAllocate(t *testing.T) {
	tel, _ := New(Options{})
	m := tel.Metrics
	ctx := context.Background()
	up := Labels{Method: "PUT", UpstreamDialect: "oscred", Op: "update", Peer: "http://127.0.0.1:1"}
	m.End(ctx, deleteKey, 204, time.Millisecond)
	m.Upstream(ctx, up, 200, time.Millisecond)
	if n := testing.AllocsPerRun(200, func() {
		m.Begin()
		m.End(ctx, deleteKey, 204, time.Millisecond)
		m.Upstream(ctx, up, 200, time.Millisecond)
		m.Identity(ctx, time.Millisecond, true)
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

func BenchmarkEnd(b *testing.B) {
	tel, _ := New(Options{})
	m := tel.Metrics
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m.Begin()
		m.End(ctx, deleteKey, 204, time.Millisecond)
	}
}

func TestPropagators(t *testing.T) {
	tc := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, c := range []struct {
		env                  string
		traceparent, baggage bool
		err                  bool
	}{
		{"", true, false, false}, // default: never the client's baggage
		{"tracecontext", true, false, false},
		{"tracecontext,baggage", true, true, false},
		{" baggage , tracecontext ", true, true, false},
		{"none", false, false, false},
		{"b3", false, false, true},
	} {
		t.Run(c.env, func(t *testing.T) {
			p, err := Propagators(c.env)
			if c.err {
				if err == nil || !strings.Contains(err.Error(), "OTEL_PROPAGATORS") {
					t.Fatalf("want an error naming OTEL_PROPAGATORS, got %v", err)
				}
				if _, err := New(Options{Getenv: func(string) string { return c.env }}); err == nil {
					t.Fatal("New accepted it")
				}
				return
			}
			in := http.Header{"Traceparent": {tc}, "Baggage": {"user=alice"}}
			ctx := p.Extract(context.Background(), propagation.HeaderCarrier(in))
			out := http.Header{}
			p.Inject(ctx, propagation.HeaderCarrier(out))
			if got := out.Get("Traceparent") != ""; got != c.traceparent {
				t.Fatalf("traceparent carried on: %v, want %v", got, c.traceparent)
			}
			if got := out.Get("Baggage") != ""; got != c.baggage {
				t.Fatalf("baggage carried on: %v (%q), want %v", got, out.Get("Baggage"), c.baggage)
			}
			if c.traceparent && !trace.SpanContextFromContext(ctx).IsValid() {
				t.Fatal("trace context not extracted")
			}
			if !c.baggage && baggage.FromContext(ctx).Len() != 0 {
				t.Fatal("baggage extracted")
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:26001": "127.0.0.1 26001", "https://iam.example": "iam.example 443",
		"http://[::1]:9/x": "::1 9", "127.0.0.1:9001": "127.0.0.1 9001", "http://h": "h 80",
	} {
		h, p := hostPort(in)
		if got := fmt.Sprintf("%s %d", h, p); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

func zero() int64 { return 0 }

// TestHistogramBuckets: le is inclusive, past the last bound is +Inf, buckets
// are cumulative, and concurrent observations all count (sum included).
func TestHistogramBuckets(t *testing.T) {
	tel, _ := New(Options{})
	m := tel.Metrics
	l := Labels{Route: "/r", Method: "GET", ClientDialect: "c", UpstreamDialect: "u", Op: "get"}
	for _, d := range []time.Duration{500 * time.Microsecond, 700 * time.Microsecond, 20 * time.Second} {
		m.Begin()
		m.End(context.Background(), l, 200, d)
	}
	const lbl = `client_dialect="c",code="200",op="get"`
	mustContain(t, scrape(t, tel),
		`credbridge_request_duration_seconds_bucket{`+lbl+`,le="0.0005"} 1`,
		`credbridge_request_duration_seconds_bucket{`+lbl+`,le="0.001"} 2`,
		`credbridge_request_duration_seconds_bucket{`+lbl+`,le="10"} 2`,
		`credbridge_request_duration_seconds_bucket{`+lbl+`,le="+Inf"} 3`,
		`credbridge_request_duration_seconds_sum{`+lbl+`} 20.0012`,
		`credbridge_request_duration_seconds_count{`+lbl+`} 3`,
		"# TYPE credbridge_request_duration_seconds histogram",
		"# TYPE http_server_request_duration_seconds histogram",
	)
	up := Labels{Method: "GET", UpstreamDialect: "u", Op: "get", Peer: "127.0.0.1:1"}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				m.Upstream(context.Background(), up, 200, 500*time.Millisecond)
			}
		}()
	}
	wg.Wait()
	mustContain(t, scrape(t, tel),
		`credbridge_upstream_duration_seconds_sum{code="200",op="get",upstream_dialect="u"} 4000`,
		`credbridge_upstream_duration_seconds_count{code="200",op="get",upstream_dialect="u"} 8000`,
		`credbridge_upstream_duration_seconds_bucket{code="200",op="get",upstream_dialect="u",le="0.25"} 0`,
		`credbridge_upstream_duration_seconds_bucket{code="200",op="get",upstream_dialect="u",le="0.5"} 8000`,
	)
}
