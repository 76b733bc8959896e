package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/internal/testing/fixed"
	"github.com/credbridge/credbridge/telemetry"
	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Fixtures as in ../shared/bench: an oscred upstream with a fixed answer and a
// Keystone identity service that knows every token as a secu_admin.
const (
	fixedAnswer = `{"credential":{"status":"inactive","access":"LOSZM4YRVLKOY9ABCDEF","create_time":"2020-01-08T06:26:08.123059Z","user_id":"07609fb9358010e21f7bc00375","description":"IAMDescription"}}`
	fixedToken  = `{"token":{"expires_at":"2099-01-01T00:00:00.000000Z","user":{"id":"07609fb9358010e21f7bc00375","name":"admin","domain":{"id":"d1","name":"dom"}},"project":{"id":"731fc6f265cd486d900f16e84c5cb594"},"roles":[{"id":"r1","name":"secu_admin"},{"id":"r2","name":"te_admin"}]}}`
	patchB      = `{"credential":{"blob":{"access":"LOSZM4YRVLKOY9ABCDEF","secret":"secretKey","status":"Inactive"},"project_id":"731fc6f265cd486d900f16e84c5cb594","type":"ec2","user_id":"07609fb9358010e21f7bc00375"}}`
)

// fixtures: the upstream is a fixed answer on fasthttp's server
// (internal/testing/fixed), so the benchmark counts the bridge's work rather
// than its fixture's; the identity service is asked once per token.
func fixtures(b *testing.B) (up *fixed.Server, idn string) {
	u := fixed.Start(b, fixedAnswer)
	i := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(fixedToken))
	}))
	b.Cleanup(i.Close)
	return u, i.URL
}

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkBridgePatchB2A is the benchmark's B2A request (ec2blob PATCH in,
// oscred PUT out) through the whole bridge over loopback HTTP, with tracing
// off and on (100% sampled, batched to an exporter). The client is fasthttp's,
// a request and a response reused per goroutine, like wrk: what is counted is
// the bridge's process, its net/http server included, not the load generator.
func BenchmarkBridgePatchB2A(b *testing.B) {
	up, idn := fixtures(b)
	for _, tracing := range []bool{false, true} {
		b.Run(map[bool]string{false: "tracing=off", true: "tracing=on"}[tracing], func(b *testing.B) {
			var exp sdktrace.SpanExporter
			if tracing {
				exp = discard{}
			}
			tel, err := telemetry.New(telemetry.Options{Exporter: exp, Version: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer tel.Shutdown(context.Background())
			cfg, err := config.Load("", []string{"CREDBRIDGE_LISTEN=127.0.0.1:0", "CREDBRIDGE_ADMIN_LISTEN=127.0.0.1:0",
				"CREDBRIDGE_UPSTREAM_URL=" + up.URL, "CREDBRIDGE_IDENTITY_URL=" + idn})
			if err != nil {
				b.Fatal(err)
			}
			rt, err := Start(cfg, Options{Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Telemetry: tel, AccessLog: io.Discard})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Shutdown(context.Background())
			client := &fasthttp.HostClient{Addr: rt.Addr(), MaxConns: 64}
			before := up.Requests()
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI("http://" + rt.Addr() + "/credentials/LOSZM4YRVLKOY9ABCDEF")
				req.Header.SetMethod("PATCH")
				req.Header.SetContentType("application/json")
				req.Header.Set("X-Auth-Token", "tok-admin-0123456789")
				req.SetBodyString(patchB)
				for pb.Next() {
					if err := client.Do(req, resp); err != nil {
						b.Fatal(err)
					}
					if resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte(`"access":"LOSZM4YRVLKOY9ABCDEF"`)) {
						b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
					}
				}
			})
			b.StopTimer()
			if n := up.Requests() - before; n < int64(b.N) {
				b.Fatalf("the upstream saw %d requests for %d", n, b.N)
			}
		})
	}
}
