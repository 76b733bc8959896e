package app

import (
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"testing"

	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/translate"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestScrapeAndSpans drives a key operation, temporary keys, a look-up, a
// 404 and a 405 through the whole bridge with tracing on, then reads the
// exported spans and GET /metrics on the admin listener.
func TestScrapeAndSpans(t *testing.T) {
	c := newCloud(t, translate.SideOscred)
	tel, exp := traced(t)
	rt, _ := startBridgeWith(t, c, tel, "CREDBRIDGE_IDENTITY_LOOKUPS=forward")
	base := "http://" + rt.Addr()
	steps := []struct {
		method, path, token, body string
		status                    int
	}{
		{"GET", "/credentials", bt.Alice, "", 200},
		{"POST", "/v3.0/OS-CREDENTIAL/securitytokens", bt.Alice, `{"auth":{"identity":{"methods":["token"]}}}`, 201},
		{"GET", "/v3/users/u-alice", bt.Alice, "", 200},
		{"GET", "/no/such/route", bt.Alice, "", 404},
		{"PUT", "/credentials", bt.Alice, "", 405},
	}
	for _, s := range steps {
		ct := ""
		if s.body != "" {
			ct = "application/json"
		}
		r := bt.Do(t, base, s.method, s.path, s.token, ct, s.body, "Traceparent", traceparent, "Baggage", "user=alice")
		if r.Status != s.status {
			t.Fatalf("%s %s: %d %s", s.method, s.path, r.Status, r.Body)
		}
	}
	m := string(bt.Do(t, "http://"+rt.AdminAddr(), "GET", "/metrics", "", "", "").Body)
	up, _ := url.Parse(c.upURL)
	for _, want := range []string{
		`credbridge_requests_total{client_dialect="ec2blob-ibm",code="200",op="list",upstream_dialect="oscred"} 1`,
		`credbridge_requests_total{client_dialect="oscred",code="201",op="temporary_keys",upstream_dialect="oscred"} 1`,
		`credbridge_requests_total{client_dialect="ec2blob-keystone",code="200",op="lookup",upstream_dialect="oscred"} 1`,
		`credbridge_requests_total{client_dialect="ec2blob-ibm",code="404",op="none",upstream_dialect="oscred"} 1`,
		`credbridge_requests_total{client_dialect="ec2blob-ibm",code="405",op="none",upstream_dialect="oscred"} 1`,
		`credbridge_request_duration_seconds_count{client_dialect="ec2blob-ibm",code="200",op="list"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/credentials",url_scheme="http"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",url_scheme="http"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="PUT",http_response_status_code="405",url_scheme="http"} 1`,
		`credbridge_upstream_duration_seconds_count{code="201",op="temporary_keys",upstream_dialect="oscred"} 1`,
		fmt.Sprintf(`http_client_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",server_address=%q,server_port=%q} 1`, up.Hostname(), up.Port()),
		fmt.Sprintf(`credbridge_build_info{commit="unknown",goversion=%q,version="test"} 1`, runtime.Version()),
		"\ngo_goroutines ", "\ngo_gc_duration_seconds", "\nprocess_cpu_seconds_total ", "\nprocess_open_fds ",
		"credbridge_requests_inflight 0",
	} {
		if !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %s\n%s", want, grepLines(m, "_count{"))
		}
	}
	checkSpans(t, exp)
	for i, b := range c.seenBaggage() {
		if b != "" {
			t.Fatalf("upstream call %d got the client's baggage %q", i, b)
		}
	}
}

// checkSpans: each request has a server span named "{method} {route}" (the
// method alone when no route matched) with its status; the list's upstream
// call has a client span.
func checkSpans(t *testing.T, exp *tracetest.InMemoryExporter) {
	t.Helper()
	server, client := map[string]tracetest.SpanStub{}, map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		switch s.SpanKind {
		case trace.SpanKindServer:
			server[s.Name] = s
		case trace.SpanKindClient:
			client[s.Name] = s
		}
	}
	for name, want := range map[string]map[string]string{
		"GET /credentials":                        {"http.request.method": "GET", "http.route": "/credentials", "http.response.status_code": "200"},
		"POST /v3.0/OS-CREDENTIAL/securitytokens": {"http.response.status_code": "201", "credbridge.op": "temporary_keys"},
		"GET /v3/users/{id}":                      {"http.response.status_code": "200", "credbridge.op": "lookup"},
		"GET":                                     {"http.response.status_code": "404", "http.route": "", "credbridge.op": "none"},
		"PUT":                                     {"http.response.status_code": "405", "credbridge.op": "none"},
	} {
		s, ok := server[name]
		if !ok {
			t.Fatalf("no server span %q: %v", name, names(exp.GetSpans()))
		}
		for k, v := range want {
			if got := attr(s, k); got != v {
				t.Fatalf("span %q: %s = %q, want %q", name, k, got, v)
			}
		}
	}
	if cli, ok := client["GET"]; !ok || attr(cli, "http.response.status_code") != "200" || attr(cli, "http.request.method") != "GET" {
		t.Fatalf("upstream client span: %+v", cli)
	}
}

// TestBaggageNotForwardedWithTracingOff: the caller's traceparent crosses
// the bridge, its baggage does not.
func TestBaggageNotForwardedWithTracingOff(t *testing.T) {
	c := newCloud(t, translate.SideOscred)
	rt, _ := startBridge(t, c)
	r := bt.Do(t, "http://"+rt.Addr(), "GET", "/v3.0/OS-CREDENTIAL/credentials", bt.Alice, "", "", "Traceparent", traceparent, "Baggage", "user=alice")
	if r.Status != 200 {
		t.Fatal(r.Status)
	}
	if p, b := c.seenParents(), c.seenBaggage(); len(p) != 1 || p[0] != traceparent || b[0] != "" {
		t.Fatalf("upstream got traceparent %v, baggage %q", p, b)
	}
}
