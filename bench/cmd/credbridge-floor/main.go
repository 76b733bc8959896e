// Command credbridge-floor is the least a Go proxy can do for the side-by-side
// benchmark's B2A request: whatever comes in, it sends one fixed oscred PUT to
// the upstream and returns the upstream's answer as it is — no input checks, no
// token, no policy, no translation, no access line, no metrics. It measures the
// ceiling Go's HTTP servers reach on the machine (bench/floor.sh), so that
// credbridge's ratio to the nginx+Lua peer can be read against what the stack
// allows at all. For loopback benchmarking only; it is not a product.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/credbridge/credbridge/app"
	"github.com/valyala/fasthttp"
)

// floor forwards every request as the same PUT. Both servers below call it, so
// the two figures differ by the server alone.
type floor struct {
	hc  *fasthttp.HostClient
	uri string
}

var putBody = []byte(`{"credential":{"status":"inactive"}}`)

// forward sends the PUT and hands the upstream's answer to reply before the
// answer's buffers are released (502 and no body when it could not be reached).
func (f *floor) forward(reply func(status int, body []byte)) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(http.MethodPut)
	req.SetRequestURI(f.uri)
	req.Header.SetContentType("application/json;charset=utf8")
	req.SetBodyRaw(putBody)
	if err := f.hc.Do(req, resp); err != nil {
		reply(http.StatusBadGateway, nil)
		return
	}
	reply(resp.StatusCode(), resp.Body())
}

// netHTTP is the floor on net/http's server, the one echo runs on. It reads
// the body, as any proxy must, and ignores it.
func (f *floor) netHTTP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sink [512]byte
		for {
			if _, err := r.Body.Read(sink[:]); err != nil {
				break
			}
		}
		f.forward(func(status int, body []byte) {
			w.Header()["Content-Type"] = []string{"application/json"}
			w.WriteHeader(status)
			_, _ = w.Write(body)
		})
	})
}

// fastHTTP is the floor on fasthttp's server (no net/http request at all).
func (f *floor) fastHTTP(c *fasthttp.RequestCtx) {
	_ = c.PostBody()
	f.forward(func(status int, body []byte) {
		c.SetStatusCode(status)
		c.SetContentType("application/json")
		c.SetBody(body)
	})
}

func newFloor(upstreamAddr string) *floor {
	return &floor{
		hc:  &fasthttp.HostClient{Addr: upstreamAddr, MaxConns: 1024},
		uri: "http://" + upstreamAddr + "/v3.0/OS-CREDENTIAL/credentials/LOSZM4YRVLKOY9ABCDEF",
	}
}

func main() {
	server := flag.String("server", "nethttp", "nethttp (net/http, as under echo) or fasthttp")
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve (loopback only)")
	upstream := flag.String("upstream", "127.0.0.1:18081", "oscred upstream host:port (loopback only)")
	timeouts := flag.Bool("timeouts", false, "nethttp: the bridge's slow-client timeouts (app.SetClientTimeouts), to price them apart from the bridge's work")
	profile := flag.String("pprof", "", "serve /debug/pprof/ on this loopback address (bench/floorprof.sh); empty: none")
	flag.Parse()
	addrs := []string{*listen, *upstream}
	if *profile != "" {
		addrs = append(addrs, *profile)
	}
	for _, a := range addrs {
		if h, _, err := net.SplitHostPort(a); err != nil || !net.ParseIP(h).IsLoopback() {
			fmt.Fprintf(os.Stderr, "credbridge-floor: %q: loopback addresses only (this is a benchmark tool)\n", a)
			os.Exit(2)
		}
	}
	if *profile != "" {
		go servePprof(*profile)
	}
	f := newFloor(*upstream)
	var err error
	switch *server {
	case "nethttp":
		srv := &http.Server{Addr: *listen, Handler: f.netHTTP()}
		if *timeouts {
			app.SetClientTimeouts(srv, 10*time.Second) // the bridge's default upstream timeout
		}
		err = srv.ListenAndServe()
	case "fasthttp":
		err = fasthttp.ListenAndServe(*listen, f.fastHTTP)
	default:
		err = fmt.Errorf("-server %q: want nethttp or fasthttp", *server)
	}
	fmt.Fprintln(os.Stderr, "credbridge-floor:", err)
	os.Exit(1)
}

// servePprof serves the profiles on their own mux and listener, so the floor's
// servers run exactly as without it.
func servePprof(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	fmt.Fprintln(os.Stderr, "credbridge-floor: pprof:", http.ListenAndServe(addr, mux))
}
