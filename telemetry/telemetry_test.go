package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/credbridge/credbridge/translate"
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
	tel, err := New(nil, false, "v")
	if err != nil || tel.Tracing {
		t.Fatalf("no exporter must mean no tracing: %v %v", err, tel.Tracing)
	}
}

func TestMetricsExposition(t *testing.T) {
	tel, err := New(nil, false, "v")
	if err != nil {
		t.Fatal(err)
	}
	m := tel.Metrics
	var l1 int64 = 7
	m.SetCache(&CacheCounters{L1Hits: func() int64 { return l1 }, RedisHits: zero, Misses: zero, NegativeHits: zero, RedisErrors: func() int64 { return 3 }, Tampered: zero})
	m.Begin()
	m.End(context.Background(), translate.SideKeystone, translate.SideOscred, translate.OpDelete, 204, time.Millisecond)
	m.Begin()
	m.End(context.Background(), translate.SideKeystone, translate.SideOscred, translate.OpDelete, 418, time.Millisecond)
	w := httptest.NewRecorder()
	tel.MetricsHandler.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(w.Body)
	for _, want := range []string{
		`credbridge_requests_total{client_dialect="ec2blob-keystone",code="204",op="delete",upstream_dialect="oscred"} 1`,
		`credbridge_requests_total{client_dialect="ec2blob-keystone",code="other",op="delete",upstream_dialect="oscred"} 1`,
		`credbridge_cache_lookups_total{level="l1"} 7`,
		`credbridge_redis_errors_total 3`,
		`credbridge_requests_inflight 0`,
		fmt.Sprintf("credbridge_gomaxprocs %d\n", runtime.GOMAXPROCS(0)),
	} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("missing %s in\n%s", want, body)
		}
	}
}

func zero() int64 { return 0 }
