package tlsconf

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbridge/credbridge/internal/testing/certs"
)

// TestClientCertificateRotates: a backend demanding client certificates sees
// the new one after the files change, with no rebuild of the client.
func TestClientCertificateRotates(t *testing.T) {
	serverCA, clientCA := certs.NewCA(t, "server CA"), certs.NewCA(t, "client CA")
	var seen atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.TLS.PeerCertificates[0].SerialNumber.String())
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCA.Issue(t, "srv", "127.0.0.1").TLS},
		ClientCAs: clientCA.Pool(), ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	first := clientCA.Issue(t, "bridge-1")
	certFile, keyFile := first.Write(t, dir)
	c := ClientTLS{CAFile: serverCA.WriteCA(t, dir), CertFile: certFile, KeyFile: keyFile}
	tc, err := c.ForURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if tc.ServerName != "127.0.0.1" {
		t.Fatalf("server name %q, want the URL's host", tc.ServerName)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
	call := func() string {
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return seen.Load().(string)
	}
	if got := call(); got != first.Leaf(t).SerialNumber.String() {
		t.Fatalf("presented %s, want the first certificate", got)
	}
	second := clientCA.Issue(t, "bridge-2")
	second.Write(t, dir)
	want := second.Leaf(t).SerialNumber.String()
	for deadline := time.Now().Add(10 * time.Second); call() != want; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the rotated client certificate was never presented")
		}
	}
}

func TestForURL(t *testing.T) {
	if tc, err := (ClientTLS{}).ForURL("https://x.example"); tc != nil || err != nil {
		t.Fatalf("nothing set: %v %v, want nil (the caller's defaults)", tc, err)
	}
	tc, err := ClientTLS{ServerName: "backend.internal"}.ForURL("https://10.0.0.1:8443")
	if err != nil || tc.ServerName != "backend.internal" || tc.MinVersion != tls.VersionTLS12 || tc.InsecureSkipVerify {
		t.Fatalf("%+v %v", tc, err)
	}
}

// BenchmarkWatchedGet is what each handshake pays to learn whether the files
// changed: an atomic load between looks, a stat per file once a second.
func BenchmarkWatchedGet(b *testing.B) {
	ca := certs.NewCA(b, "CA")
	certFile, keyFile := ca.Issue(b, "x").Write(b, b.TempDir())
	w, err := NewWatched(func() (*tls.Certificate, error) { return LoadPair(certFile, keyFile) }, nil, certFile, keyFile)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if w.Get() == nil {
			b.Fatal("no certificate")
		}
	}
}
