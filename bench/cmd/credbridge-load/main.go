// Command credbridge-load sends requests at fixed rates to one URL and prints a
// RESULT line per rate with p50/p99/p99.9 latency (see bench/loadgen).
// For loopback benchmarking of the bridge and its peers only.
package main

import (
	"flag"
	"fmt"
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
	t := loadgen.Target{Method: *method, URL: *target, Header: http.Header{}, Body: []byte(*body), Conns: *conns}
	for _, h := range hdr {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "credbridge-load: bad header %q\n", h)
			os.Exit(2)
		}
		t.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	for _, r := range strings.Split(*rates, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || rate <= 0 || rate > 50000 {
			fmt.Fprintf(os.Stderr, "credbridge-load: bad rate %q\n", r)
			os.Exit(2)
		}
		fmt.Printf("%s RESULT %s\n", *name, loadgen.Run(t, rate, *dur))
	}
}
