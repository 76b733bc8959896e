package app

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/internal/testing/certs"
	"github.com/credbridge/credbridge/translate"
)

const oscredPath = "/v3.0/OS-CREDENTIAL/credentials"

// httpsClient trusts pool and presents cert (nil: none). No keep-alive, so
// every request is a new handshake and sees the certificate of the moment.
func httpsClient(pool *x509.CertPool, cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
}

func get(c *http.Client, url, token string) (*bt.Resp, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return &bt.Resp{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}

// servedSerial is the serial of the certificate the bridge presents now.
func servedSerial(t *testing.T, addr string, pool *x509.CertPool) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// listenerEnv is the bridge's tls.* environment for a pair (and a client CA).
func listenerEnv(certFile, keyFile, clientCA string) []string {
	env := []string{"CREDBRIDGE_TLS_CERT_FILE=" + certFile, "CREDBRIDGE_TLS_KEY_FILE=" + keyFile}
	if clientCA != "" {
		env = append(env, "CREDBRIDGE_TLS_CLIENT_CA_FILE="+clientCA)
	}
	return env
}

func TestHTTPSListener(t *testing.T) {
	ca := certs.NewCA(t, "listener CA")
	certFile, keyFile := ca.Issue(t, "bridge", "127.0.0.1").Write(t, t.TempDir())
	c := newCloud(t, translate.SideOscred)
	rt, _ := startBridge(t, c, listenerEnv(certFile, keyFile, "")...)
	r, err := get(httpsClient(ca.Pool(), nil), "https://"+rt.Addr()+oscredPath, bt.Alice)
	if err != nil || r.Status != 200 {
		t.Fatalf("https list: %v %+v", err, r)
	}
	// Keystone links name the scheme clients use: https, with no public_url set.
	r, err = get(httpsClient(ca.Pool(), nil), "https://"+rt.Addr()+"/v3/credentials", bt.Alice)
	if err != nil || r.Status != 200 {
		t.Fatalf("keystone list: %v %+v", err, r)
	}
	if self, _ := r.JSON()["links"].(map[string]any)["self"].(string); !strings.HasPrefix(self, "https://127.0.0.1:") {
		t.Fatalf("links.self %q, want https://127.0.0.1:...", self)
	}
	calls := c.idn.Requests()
	// Plain HTTP to an HTTPS listener: refused before any byte is read as a
	// request, so its token goes nowhere.
	plain, err := get(&http.Client{Timeout: 5 * time.Second}, "http://"+rt.Addr()+oscredPath, bt.Bob)
	if err != nil || plain.Status != http.StatusBadRequest {
		t.Fatalf("plain http to the https listener: %v %+v", err, plain)
	}
	if n := c.idn.Requests(); n != calls {
		t.Fatalf("a plain-http request reached the identity service (%d calls, was %d)", n, calls)
	}
	// Old protocol versions are refused; HTTP/2 is not offered (connlimit's
	// cap assumes one request at a time per connection).
	if c, err := tls.Dial("tcp", rt.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	h2, err := tls.Dial("tcp", rt.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	if p := h2.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("negotiated %q, want http/1.1", p)
	}
	h2.Close()
	// connlimit counts connections under TLS: one held open shows.
	conn, err := tls.Dial("tcp", rt.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitFor(t, func() bool { return strings.Contains(scrape(t, rt.AdminAddr()), "credbridge_connections_open 1\n") })
}

// TestTLSConnStateUnwraps: connlimit tracks idle connections by the conn it
// accepted; under TLS the server reports the *tls.Conn around it.
func TestTLSConnStateUnwraps(t *testing.T) {
	inner, other := net.Pipe()
	defer inner.Close()
	defer other.Close()
	var got net.Conn
	tlsConnState(func(c net.Conn, _ http.ConnState) { got = c })(tls.Server(inner, &tls.Config{}), http.StateIdle)
	if got != inner {
		t.Fatalf("connlimit was handed %T, want the accepted conn", got)
	}
	tlsConnState(func(c net.Conn, _ http.ConnState) { got = c })(other, http.StateIdle)
	if got != other {
		t.Fatal("a plain conn must pass as is")
	}
}

func scrape(t *testing.T, admin string) string {
	t.Helper()
	return string(bt.Do(t, "http://"+admin, "GET", "/metrics", "", "", "").Body)
}

func TestListenerCertRotation(t *testing.T) {
	ca := certs.NewCA(t, "listener CA")
	dir := t.TempDir()
	first := ca.Issue(t, "bridge-1", "127.0.0.1")
	certFile, keyFile := first.Write(t, dir)
	c := newCloud(t, translate.SideOscred)
	rt, logs := startBridge(t, c, listenerEnv(certFile, keyFile, "")...)
	if got := servedSerial(t, rt.Addr(), ca.Pool()); got != first.Leaf(t).SerialNumber.String() {
		t.Fatalf("served %s, want the first certificate", got)
	}

	t.Run("changed files are picked up without restart", func(t *testing.T) {
		second := ca.Issue(t, "bridge-2", "127.0.0.1")
		second.Write(t, dir)
		want := second.Leaf(t).SerialNumber.String()
		waitFor(t, func() bool { return servedSerial(t, rt.Addr(), ca.Pool()) == want })
	})

	t.Run("a half-written rotation keeps the old certificate", func(t *testing.T) {
		before := servedSerial(t, rt.Addr(), ca.Pool())
		third := ca.Issue(t, "bridge-3", "127.0.0.1")
		if err := os.WriteFile(certFile, third.CertPEM, 0o600); err != nil { // key not yet written
			t.Fatal(err)
		}
		// Files are looked at when a handshake comes, at most once a second.
		waitFor(t, func() bool {
			if got := servedSerial(t, rt.Addr(), ca.Pool()); got != before {
				t.Fatalf("served %s after a mismatched pair, want the old %s", got, before)
			}
			return strings.Contains(logs.String(), "tls files changed but do not load")
		})
		if err := os.WriteFile(keyFile, third.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		want := third.Leaf(t).SerialNumber.String()
		waitFor(t, func() bool { return servedSerial(t, rt.Addr(), ca.Pool()) == want })
	})

	t.Run("SIGHUP reads files whose times did not change", func(t *testing.T) {
		fi, err := os.Stat(certFile)
		if err != nil {
			t.Fatal(err)
		}
		kfi, _ := os.Stat(keyFile)
		fourth := ca.Issue(t, "bridge-4", "127.0.0.1")
		fourth.Write(t, dir)
		// cp -p: same times (and ECDSA certificates of one shape are often
		// the same size), so only a reload can tell.
		_ = os.Chtimes(certFile, fi.ModTime(), fi.ModTime())
		_ = os.Chtimes(keyFile, kfi.ModTime(), kfi.ModTime())
		if err := rt.Reload(rt.cfg.Load()); err != nil {
			t.Fatal(err)
		}
		if got := servedSerial(t, rt.Addr(), ca.Pool()); got != fourth.Leaf(t).SerialNumber.String() {
			t.Fatalf("served %s after reload, want the fourth certificate", got)
		}
	})

	t.Run("a reload naming files that do not load is refused whole", func(t *testing.T) {
		before := servedSerial(t, rt.Addr(), ca.Pool())
		cfg := *rt.cfg.Load()
		cfg.TLS.CertFile = filepath.Join(t.TempDir(), "gone.pem")
		cfg.Log.Level = "error"
		if err := rt.Reload(&cfg); err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
			t.Fatalf("reload: %v", err)
		}
		if rt.cfg.Load().Log.Level == "error" || servedSerial(t, rt.Addr(), ca.Pool()) != before {
			t.Fatal("part of a refused reload applied")
		}
	})

	t.Run("TLS cannot be switched off by reload", func(t *testing.T) {
		cfg := *rt.cfg.Load()
		cfg.TLS = config.TLS{}
		if err := rt.Reload(&cfg); err == nil || !strings.Contains(err.Error(), "restart") {
			t.Fatalf("reload without tls: %v", err)
		}
	})
}

// waitFor polls cond for up to 10 s (files are looked at once a second).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10s")
}

func TestMutualTLSListener(t *testing.T) {
	serverCA, clientCA, otherCA := certs.NewCA(t, "server CA"), certs.NewCA(t, "client CA"), certs.NewCA(t, "other CA")
	dir := t.TempDir()
	certFile, keyFile := serverCA.Issue(t, "bridge", "127.0.0.1").Write(t, dir)
	c := newCloud(t, translate.SideOscred)
	rt, _ := startBridge(t, c, listenerEnv(certFile, keyFile, clientCA.WriteCA(t, dir))...)
	url := "https://" + rt.Addr() + oscredPath
	good, stranger := clientCA.Issue(t, "client"), otherCA.Issue(t, "client")
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
	}{{"no client certificate", nil}, {"a certificate from another CA", &stranger.TLS}} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			calls := c.idn.Requests()
			if r, err := get(httpsClient(serverCA.Pool(), tc.cert), url, bt.Alice); err == nil {
				t.Fatalf("answered %d %s", r.Status, r.Body)
			}
			if n := c.idn.Requests(); n != calls {
				t.Fatal("a refused client's token reached the identity service")
			}
		})
	}
	t.Run("a certificate from the client CA is served", func(t *testing.T) {
		r, err := get(httpsClient(serverCA.Pool(), &good.TLS), url, bt.Alice)
		if err != nil || r.Status != 200 {
			t.Fatalf("%v %+v", err, r)
		}
	})
}

// tlsServer serves h over HTTPS with a certificate from ca naming hosts
// (none: 127.0.0.1); clientCAs, when set, must have signed the client's.
func tlsServer(t *testing.T, h http.Handler, ca *certs.CA, clientCAs *x509.CertPool, hosts ...string) *httptest.Server {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "backend", hosts...).TLS}, MinVersion: tls.VersionTLS12}
	if clientCAs != nil {
		srv.TLS.ClientCAs, srv.TLS.ClientAuth = clientCAs, tls.RequireAndVerifyClientCert
	}
	srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError) // handshake refusals are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// tlsCloud is newCloud with both the identity service and the backend on
// HTTPS, each demanding a client certificate signed by clientCA.
func tlsCloud(t *testing.T, up translate.Side, backendCA *certs.CA, clientCA *certs.CA) *cloud {
	c := &cloud{dir: emulator.NewDirectory(emulator.DemoUsers())}
	c.idn = emulator.NewIdentity(c.dir)
	c.idURL = tlsServer(t, c.idn.Handler(), backendCA, clientCA.Pool()).URL
	c.upURL = tlsServer(t, c.backend(up), backendCA, clientCA.Pool()).URL
	return c
}

// backend is the reference server speaking up, its store kept in c.
func (c *cloud) backend(up translate.Side) http.Handler {
	if up == translate.SideOscred {
		o := emulator.NewOscred(c.dir)
		c.store = o.Store
		return o.Handler()
	}
	b := emulator.NewEC2Blob(c.dir, up == translate.SideKeystone)
	c.store = b.Store
	return b.Handler()
}

// backendEnv is upstream.tls and identity.tls naming caFile and a client pair.
func backendEnv(section, caFile, certFile, keyFile string) []string {
	p := "CREDBRIDGE_" + section + "_TLS_"
	env := []string{p + "CA_FILE=" + caFile}
	if certFile != "" {
		env = append(env, p+"CERT_FILE="+certFile, p+"KEY_FILE="+keyFile)
	}
	return env
}

func TestBackendsOverTLS(t *testing.T) {
	backendCA, clientCA, otherCA := certs.NewCA(t, "backend CA"), certs.NewCA(t, "bridge client CA"), certs.NewCA(t, "other CA")
	dir, otherDir := t.TempDir(), t.TempDir()
	caFile, otherCAFile := backendCA.WriteCA(t, dir), otherCA.WriteCA(t, otherDir)
	certFile, keyFile := clientCA.Issue(t, "credbridge").Write(t, dir)
	for _, side := range []translate.Side{translate.SideOscred, translate.SideIBM} {
		c := tlsCloud(t, side, backendCA, clientCA)
		env := []string{"CREDBRIDGE_UPSTREAM_DIALECT=" + map[bool]string{true: "oscred", false: "ec2blob"}[side == translate.SideOscred]}
		good := append(append(env, backendEnv("UPSTREAM", caFile, certFile, keyFile)...), backendEnv("IDENTITY", caFile, certFile, keyFile)...)
		t.Run(side.String()+" with the CA bundle and client certificate", func(t *testing.T) {
			for _, client := range []translate.Side{translate.SideOscred, translate.SideIBM} {
				rt, _ := startBridge(t, c, good...)
				if r := bt.Do(t, "http://"+rt.Addr(), "GET", bt.Base(client), bt.Alice, "", ""); r.Status != 200 {
					t.Fatalf("%s client: %d %s", client, r.Status, r.Body)
				}
			}
		})
		t.Run(side.String()+" upstream with the wrong CA fails closed", func(t *testing.T) {
			bad := append(append(env, backendEnv("UPSTREAM", otherCAFile, certFile, keyFile)...), backendEnv("IDENTITY", caFile, certFile, keyFile)...)
			checkBadGateway(t, c, bad)
		})
		t.Run(side.String()+" upstream demanding a client certificate the bridge lacks fails closed", func(t *testing.T) {
			bad := append(append(env, backendEnv("UPSTREAM", caFile, "", "")...), backendEnv("IDENTITY", caFile, certFile, keyFile)...)
			checkBadGateway(t, c, bad)
		})
	}
}

// checkBadGateway: every client dialect gets a 502 in its own shape, and the
// backend's store is untouched.
func checkBadGateway(t *testing.T, c *cloud, env []string) {
	t.Helper()
	rt, _ := startBridge(t, c, env...)
	for _, client := range []translate.Side{translate.SideOscred, translate.SideIBM, translate.SideKeystone} {
		r := bt.Do(t, "http://"+rt.Addr(), "GET", bt.Base(client), bt.Alice, "", "")
		if r.Status != http.StatusBadGateway {
			t.Fatalf("%s client: %d %s, want 502", client, r.Status, r.Body)
		}
		bt.CheckDialect(t, client, r)
	}
}

// TestUpstreamServerName: a backend reached by IP whose certificate names
// only a DNS name is trusted with upstream.tls.server_name, and not without.
func TestUpstreamServerName(t *testing.T) {
	ca := certs.NewCA(t, "backend CA")
	caFile := ca.WriteCA(t, t.TempDir())
	c := newCloud(t, translate.SideOscred)
	c.upURL = tlsServer(t, c.backend(translate.SideOscred), ca, nil, "backend.internal").URL
	env := backendEnv("UPSTREAM", caFile, "", "")
	rt, _ := startBridge(t, c, append(env, "CREDBRIDGE_UPSTREAM_TLS_SERVER_NAME=backend.internal")...)
	if r := bt.Do(t, "http://"+rt.Addr(), "GET", oscredPath, bt.Alice, "", ""); r.Status != 200 {
		t.Fatalf("with server_name: %d %s", r.Status, r.Body)
	}
	checkBadGateway(t, c, env)
}

func TestIdentityOverTLS(t *testing.T) {
	backendCA, clientCA, otherCA := certs.NewCA(t, "identity CA"), certs.NewCA(t, "bridge client CA"), certs.NewCA(t, "other CA")
	dir := t.TempDir()
	caFile := backendCA.WriteCA(t, dir)
	certFile, keyFile := clientCA.Issue(t, "credbridge").Write(t, dir)
	c := tlsCloud(t, translate.SideOscred, backendCA, clientCA)
	up := backendEnv("UPSTREAM", caFile, certFile, keyFile)
	t.Run("validates with identity.tls", func(t *testing.T) {
		rt, _ := startBridge(t, c, append(up, backendEnv("IDENTITY", caFile, certFile, keyFile)...)...)
		if r := bt.Do(t, "http://"+rt.Addr(), "GET", oscredPath, bt.Alice, "", ""); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("the Keystone service login uses identity.tls", func(t *testing.T) {
		pw := secretFile(t, "svc-pass")
		env := append(up, backendEnv("IDENTITY", caFile, certFile, keyFile)...)
		env = append(env, "CREDBRIDGE_UPSTREAM_AUTH_MODE=keystone", "CREDBRIDGE_UPSTREAM_AUTH_KEYSTONE_URL="+c.idURL,
			"CREDBRIDGE_UPSTREAM_AUTH_KEYSTONE_USER_NAME=credbridge", "CREDBRIDGE_UPSTREAM_AUTH_KEYSTONE_USER_DOMAIN=demo",
			"CREDBRIDGE_UPSTREAM_AUTH_KEYSTONE_PASSWORD_FILE="+pw)
		rt, _ := startBridge(t, c, env...)
		if r := bt.Do(t, "http://"+rt.Addr(), "GET", oscredPath, bt.Admin, "", ""); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	for name, env := range map[string][]string{
		"the wrong CA":          backendEnv("IDENTITY", otherCA.WriteCA(t, t.TempDir()), certFile, keyFile),
		"no client certificate": backendEnv("IDENTITY", caFile, "", ""),
	} {
		t.Run(name+" fails closed and shows in readyz", func(t *testing.T) {
			rt, _ := startBridge(t, c, append(up, env...)...)
			r := bt.Do(t, "http://"+rt.Addr(), "GET", oscredPath, bt.Alice, "", "")
			if r.Status != http.StatusServiceUnavailable {
				t.Fatalf("%d %s, want 503", r.Status, r.Body)
			}
			bt.CheckDialect(t, translate.SideOscred, r)
			if ready := bt.Do(t, "http://"+rt.AdminAddr(), "GET", "/readyz", "", "", ""); !strings.Contains(string(ready.Body), "identity service unreachable") {
				t.Fatalf("readyz: %d %s", ready.Status, ready.Body)
			}
		})
	}
}
