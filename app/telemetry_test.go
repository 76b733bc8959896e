package app

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/telemetry"
	"github.com/credbridge/credbridge/translate"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
	traceparent = "00-" + clientTrace + "-" + clientSpan + "-01"
)

func traced(t *testing.T) (*telemetry.Telemetry, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(telemetry.Options{Exporter: exp, Sync: true, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, exp
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}

// TestUpdateSpanTree checks the span tree of an update in each direction and
// that the upstream continued the client's trace.
func TestUpdateSpanTree(t *testing.T) {
	tests := []struct {
		name           string
		client, up     translate.Side
		method, upVerb string
		route          string
	}{
		{"ec2blob to oscred", translate.SideIBM, translate.SideOscred, "PATCH", "PUT", "/credentials/{id}"},
		{"oscred to ec2blob", translate.SideOscred, translate.SideIBM, "PUT", "PATCH", "/v3.0/OS-CREDENTIAL/credentials/{id}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t, tc.up)
			tel, exp := traced(t)
			env := []string{}
			if tc.up != translate.SideOscred {
				env = append(env, "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob")
			}
			rt, _ := startBridgeWith(t, c, tel, env...)
			e := &bt.Env{T: t, Store: c.store, URL: "http://" + rt.Addr()}
			ak, sk := e.SeedIn(c.dir, "u-alice")
			body := `{"credential":{"status":"inactive"}}`
			if tc.client != translate.SideOscred {
				body = `{"credential":{"blob":{"access":"` + ak + `","secret":"` + sk + `","status":"Inactive"},"user_id":"u-alice"}}`
			}
			r := e.Do(tc.method, bt.KeyPath(tc.client, ak), bt.Alice, bt.CType(tc.client), body, "Traceparent", traceparent)
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			spans := exp.GetSpans()
			byName := map[string]tracetest.SpanStub{}
			for _, s := range spans {
				if s.SpanContext.TraceID().String() != clientTrace {
					t.Fatalf("span %q left the client's trace", s.Name)
				}
				byName[s.Name] = s
			}
			// OpenTelemetry's HTTP conventions: "{method} {route}".
			server, ok := byName[tc.method+" "+tc.route]
			if !ok || server.SpanKind != trace.SpanKindServer || server.Parent.SpanID().String() != clientSpan {
				t.Fatalf("server span missing or not a child of the client's: %+v", names(spans))
			}
			for k, want := range map[string]string{"credbridge.client_dialect": tc.client.String(), "credbridge.upstream_dialect": tc.up.String(),
				"credbridge.op": "update", "http.response.status_code": "200", "http.request.method": tc.method,
				"url.scheme": "http", "url.path": bt.KeyPath(tc.client, ak)} {
				if got := attr(server, k); got != want {
					t.Fatalf("server span %s = %q, want %q", k, got, want)
				}
			}
			pol := byName["policy"]
			if pol.Parent.SpanID() != server.SpanContext.SpanID() || attr(pol, "credbridge.cache") != "miss" ||
				attr(pol, "credbridge.decision") != "allow" || attr(pol, "credbridge.rule") != "owner" {
				t.Fatalf("policy span: %+v", pol.Attributes)
			}
			if id := byName["identity validate"]; id.Parent.SpanID() != pol.SpanContext.SpanID() {
				t.Fatalf("identity span not under policy: %v", names(spans))
			}
			for _, n := range []string{"translate", "GET", tc.upVerb} {
				if s, ok := byName[n]; !ok || s.Parent.SpanID() != server.SpanContext.SpanID() {
					t.Fatalf("span %q missing or misplaced: %v", n, names(spans))
				}
			}
			// The client span names its peer as the conventions do: a host and a
			// port, and the full URL apart.
			up := byName[tc.upVerb]
			host, port, _ := net.SplitHostPort(strings.TrimPrefix(c.upURL, "http://"))
			for k, want := range map[string]string{"server.address": host, "server.port": port, "http.request.method": tc.upVerb,
				"url.full": c.upURL + bt.KeyPath(tc.up, ak), "http.response.status_code": "200"} {
				if got := attr(up, k); got != want {
					t.Fatalf("client span %s = %q, want %q", k, got, want)
				}
			}
			for _, p := range c.seenParents() {
				if !strings.HasPrefix(p, "00-"+clientTrace+"-") {
					t.Fatalf("upstream got traceparent %q", p)
				}
			}
		})
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// TestTraceparentForwardedWithTracingOff: no spans of its own, but the
// caller's trace still reaches the upstream.
func TestTraceparentForwardedWithTracingOff(t *testing.T) {
	c := newCloud(t, translate.SideOscred)
	rt, logs := startBridge(t, c)
	r := bt.Do(t, "http://"+rt.Addr(), "GET", "/v3.0/OS-CREDENTIAL/credentials", bt.Alice, "", "", "Traceparent", traceparent)
	if r.Status != 200 {
		t.Fatal(r.Status)
	}
	if p := c.seenParents(); len(p) != 1 || p[0] != traceparent {
		t.Fatalf("upstream got %v", p)
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+clientTrace+`"`) {
		t.Fatalf("access log without the trace id: %s", logs.String())
	}
}

func TestMetricsMoveAfterTraffic(t *testing.T) {
	c := newCloud(t, translate.SideOscred)
	rt, _ := startBridge(t, c)
	base := "http://" + rt.Addr()
	for i := 0; i < 3; i++ {
		bt.Do(t, base, "GET", "/credentials", bt.Alice, "", "")
	}
	bt.Do(t, base, "GET", "/v3.0/OS-CREDENTIAL/credentials", "", "", "")
	r := bt.Do(t, "http://"+rt.AdminAddr(), "GET", "/metrics", "", "", "")
	m := string(r.Body)
	for _, want := range []string{
		`credbridge_requests_total{client_dialect="ec2blob-ibm",code="200",op="list",upstream_dialect="oscred"} 3`,
		`credbridge_requests_total{client_dialect="oscred",code="401",op="list",upstream_dialect="oscred"} 1`,
		`credbridge_cache_lookups_total{level="l1"} 2`,
		`credbridge_cache_lookups_total{level="miss"} 1`,
		`credbridge_redis_errors_total 0`,
		`credbridge_requests_inflight 0`,
		`credbridge_request_duration_seconds_count{client_dialect="ec2blob-ibm",code="200",op="list"} 3`,
		`credbridge_upstream_duration_seconds_count{code="200",op="list",upstream_dialect="oscred"} 3`,
		`credbridge_identity_duration_seconds_count{outcome="ok"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %s\n%s", want, grepLines(m, "credbridge_"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestNoSecretsInLogsOrSpans sends tokens and secrets through every path and
// greps every log line and span attribute for them.
func TestNoSecretsInLogsOrSpans(t *testing.T) {
	for _, up := range []translate.Side{translate.SideOscred, translate.SideKeystone} {
		t.Run(up.String(), func(t *testing.T) {
			c := newCloud(t, up)
			tel, exp := traced(t)
			env := []string{}
			if up != translate.SideOscred {
				env = append(env, "CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR=keystone")
			}
			rt, logs := startBridgeWith(t, c, tel, env...)
			base := "http://" + rt.Addr()
			secrets := []string{bt.Admin, bt.Alice, bt.Bob, "bogus-token-value-123"}
			r := bt.Do(t, base, "POST", "/v3.0/OS-CREDENTIAL/credentials", bt.Admin, "application/json", `{"credential":{"user_id":"u-alice"}}`)
			if r.Status != 201 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			ak, sk := r.Cred()["access"].(string), r.Cred()["secret"].(string)
			secrets = append(secrets, sk, "MY-OWN-SECRET-0001")
			bt.Do(t, base, "PATCH", "/credentials/"+ak, bt.Alice, "application/json",
				`{"credential":{"blob":{"access":"`+ak+`","secret":"MY-OWN-SECRET-0001","status":"Inactive"}}}`)
			bt.Do(t, base, "GET", "/credentials/"+ak, bt.Alice, "", "")
			bt.Do(t, base, "GET", "/v3/credentials", bt.Bob, "", "")
			bt.Do(t, base, "GET", "/credentials", "bogus-token-value-123", "", "")
			bt.Do(t, base, "PUT", "/v3.0/OS-CREDENTIAL/credentials/"+ak, bt.Bob, "application/json", `{"credential":{"status":"active"}}`)
			var out []string // spans are exported as they end (syncer)
			out = append(out, logs.String())
			for _, s := range exp.GetSpans() {
				out = append(out, s.Name, s.Status.Description)
				for _, a := range s.Attributes {
					out = append(out, string(a.Key)+"="+a.Value.String())
				}
				for _, ev := range s.Events {
					out = append(out, ev.Name)
					for _, a := range ev.Attributes {
						out = append(out, a.Value.String())
					}
				}
			}
			all := strings.Join(out, "\n")
			if len(exp.GetSpans()) < 10 || !strings.Contains(logs.String(), `"msg":"request"`) {
				t.Fatalf("too little output to judge: %d spans", len(exp.GetSpans()))
			}
			for _, s := range secrets {
				if strings.Contains(all, s) {
					t.Fatalf("%q found in logs or spans", s)
				}
			}
		})
	}
}

var _ sdktrace.SpanExporter = (*tracetest.InMemoryExporter)(nil)

// An identity look-up has its own server span in the client's trace, and the
// identity service gets that span as its parent.
func TestLookupSpanAndPropagation(t *testing.T) {
	c := newCloud(t, translate.SideOscred)
	var mu sync.Mutex
	var parents []string
	inner := c.idn.Handler()
	idSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v3/users") {
			mu.Lock()
			parents = append(parents, r.Header.Get("Traceparent"))
			mu.Unlock()
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(idSrv.Close)
	c.idURL = idSrv.URL
	tel, exp := traced(t)
	rt, _ := startBridgeWith(t, c, tel)
	r := bt.Do(t, "http://"+rt.Addr(), "GET", "/v3/users/u-alice", bt.Alice, "", "", "Traceparent", traceparent)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	var server *tracetest.SpanStub
	spans := exp.GetSpans()
	var client *tracetest.SpanStub
	for i, s := range spans {
		switch s.Name {
		case "GET /v3/users/{id}":
			server = &spans[i]
		case "GET":
			client = &spans[i]
		}
	}
	if server == nil || server.SpanKind != trace.SpanKindServer || server.SpanContext.TraceID().String() != clientTrace ||
		server.Parent.SpanID().String() != clientSpan || attr(*server, "http.response.status_code") != "200" {
		t.Fatalf("no server span for the look-up in the client's trace: %v", names(spans))
	}
	if client == nil || client.SpanKind != trace.SpanKindClient || client.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Fatalf("no client span for the call to the identity service: %v", names(spans))
	}
	mu.Lock()
	defer mu.Unlock()
	want := "00-" + clientTrace + "-" + client.SpanContext.SpanID().String() + "-01"
	if len(parents) != 1 || parents[0] != want {
		t.Fatalf("identity service got traceparent %v, want %s", parents, want)
	}
}
