package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

// The floor must do the benchmark's job minimally but really: every request
// reaches the upstream as the oscred PUT and its answer comes back unchanged, on
// both servers. Otherwise its figures would not bound anything.
func TestFloorForwards(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"credential":{"status":"inactive"}}`)
	}))
	defer up.Close()
	f := newFloor(strings.TrimPrefix(up.URL, "http://"))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fasthttp.Server{Handler: f.fastHTTP}
	go func() { _ = fs.Serve(ln) }()
	defer fs.Shutdown()
	nh := httptest.NewServer(f.netHTTP())
	defer nh.Close()

	for _, tc := range []struct{ name, url string }{
		{"nethttp", nh.URL},
		{"fasthttp", "http://" + ln.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			for range 3 { // keep-alive: the connection is reused
				req, _ := http.NewRequest(http.MethodPatch, tc.url+"/credentials/X", strings.NewReader(`{"credential":{"blob":{}}}`))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != `{"credential":{"status":"inactive"}}` {
					t.Fatalf("answer %d %s", resp.StatusCode, b)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			want := `PUT /v3.0/OS-CREDENTIAL/credentials/LOSZM4YRVLKOY9ABCDEF application/json;charset=utf8 {"credential":{"status":"inactive"}}`
			if len(seen) != 3 {
				t.Fatalf("upstream saw %d requests %q, want 3", len(seen), seen)
			}
			for i, got := range seen {
				if got != want {
					t.Fatalf("upstream request %d: %q, want %q", i, got, want)
				}
			}
		})
	}
}

func TestFloorUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	nh := httptest.NewServer(newFloor(addr).netHTTP())
	defer nh.Close()
	resp, err := http.Post(nh.URL+"/credentials/X", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
}
