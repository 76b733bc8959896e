// Command credbridge-load sends requests at fixed rates to one URL and prints a
// RESULT line per rate with p50/p99/p99.9 latency (see bench/loadgen).
// For loopback benchmarking of the bridge and its peers only.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/credbridge/credbridge/bench/loadgen"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	method := flag.String("method", "GET", "HTTP method")
	target := flag.String("url", "", "URL (loopback only)")
	body := flag.String("body", "", "request body")
	rates := flag.String("rates", "1000,2500,5000", "comma-separated requests per second")
	dur := flag.Duration("duration", 5*time.Second, "time at each rate")
	name := flag.String("name", "target", "name printed before each RESULT")
	conns := flag.Int("conns", 128, "most connections to the target, as wrk2's -c (0: no cap; each request that finds none idle dials one)")
	await := flag.Duration("await", 0, "first wait up to this long for the URL's port to accept a TCP connection, then start at once (0: start at once)")
	window := flag.Duration("window", 0, "also print p50/p99/max of the requests scheduled in each window of this length (0: none)")
	var hdr headers
	flag.Var(&hdr, "header", "Name: value (repeatable)")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1") {
		fmt.Fprintln(os.Stderr, "credbridge-load: --url must be a loopback http URL")
		os.Exit(2)
	}
	if *conns < 0 {
		fmt.Fprintln(os.Stderr, "credbridge-load: --conns must be 0 or more")
		os.Exit(2)
	}
	t := loadgen.Target{Method: *method, URL: *target, Header: http.Header{}, Body: []byte(*body), Conns: *conns, Window: *window}
	for _, h := range hdr {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "credbridge-load: bad header %q\n", h)
			os.Exit(2)
		}
		t.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if *await > 0 {
		if err := awaitAccept(u.Host, *await); err != nil {
			fmt.Fprintf(os.Stderr, "credbridge-load: %v\n", err)
			os.Exit(1)
		}
	}
	for _, r := range strings.Split(*rates, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || rate <= 0 || rate > 50000 {
			fmt.Fprintf(os.Stderr, "credbridge-load: bad rate %q\n", r)
			os.Exit(2)
		}
		res := loadgen.Run(t, rate, *dur)
		fmt.Printf("%s RESULT %s\n", *name, res)
		for _, w := range res.Windows {
			fmt.Printf("%s WINDOW rate=%d %s\n", *name, rate, w)
		}
	}
}

// awaitAccept dials addr until a connection is accepted or within is over. It
// is the readiness a cold-start run waits for: the listen socket, not /readyz
// and not a first request, which would warm the target before it is measured.
// The probe connection is closed at once; it carries no request.
func awaitAccept(addr string, within time.Duration) error {
	if !strings.Contains(addr, ":") {
		addr += ":80"
	}
	end := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s did not accept within %s: %v", addr, within, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
