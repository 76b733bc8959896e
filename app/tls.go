package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/internal/tlsconf"
)

// serverTLS is the client listener's TLS settings, rebuilt from tls.* files
// when they change (tlsconf.Watched) and on SIGHUP.
type serverTLS = tlsconf.Watched[*tls.Config]

// newServerTLS loads tls.cert_file, tls.key_file and tls.client_ca_file; nil
// when the listener is plain HTTP.
func newServerTLS(t config.TLS, log *slog.Logger) (*serverTLS, error) {
	if !t.Enabled() {
		return nil, nil
	}
	build := func() (*tls.Config, error) {
		pair, err := tlsconf.LoadPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file, tls.key_file: %v", err)
		}
		tc := baseServerTLS()
		tc.Certificates = []tls.Certificate{*pair}
		if t.ClientCAFile != "" {
			pool, err := tlsconf.LoadPool(t.ClientCAFile)
			if err != nil {
				return nil, fmt.Errorf("tls.client_ca_file: %v", err)
			}
			tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		return tc, nil
	}
	warn := func(err error) {
		log.Warn("tls files changed but do not load; the old certificate keeps serving", "err", err.Error())
	}
	return tlsconf.NewWatched(build, warn, t.CertFile, t.KeyFile, t.ClientCAFile)
}

// baseServerTLS: TLS 1.2 or later, and HTTP/1.1 only — connlimit's cap and
// the per-connection memory figures assume one request at a time per
// connection, which HTTP/2's streams would break.
func baseServerTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
}

// wrapTLS puts TLS on top of ln when the config asks for it. TLS goes
// outside connlimit so that the cap counts sockets, handshakes included,
// and a client stuck in its handshake holds a slot only until the server's
// header timeout. Each handshake takes the current settings, so a rotated
// certificate or CA bundle applies to new connections without a restart.
func (r *Runtime) wrapTLS(ln net.Listener, t config.TLS) (net.Listener, error) {
	st, err := newServerTLS(t, r.log)
	if err != nil || st == nil {
		return ln, err
	}
	r.tls.Store(st)
	tc := baseServerTLS()
	tc.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return r.tls.Load().Get(), nil }
	return tls.NewListener(ln, tc), nil
}

// reloadTLS re-reads the listener's files on SIGHUP (a new set of paths
// included). Turning TLS on or off needs a restart: the listener is made once.
func (r *Runtime) reloadTLS(t config.TLS) error {
	cur := r.tls.Load()
	if t.Enabled() != (cur != nil) {
		return errors.New("tls cannot be turned on or off on reload; restart instead")
	}
	if cur == nil {
		return nil
	}
	if old := r.cfg.Load().TLS; old != t {
		next, err := newServerTLS(t, r.log)
		if err != nil {
			return err
		}
		r.tls.Store(next)
		return nil
	}
	return cur.Reload()
}

// tlsConnState hands connlimit the socket under a TLS connection: the
// server reports the *tls.Conn, connlimit tracks the conn it accepted.
func tlsConnState(f func(net.Conn, http.ConnState)) func(net.Conn, http.ConnState) {
	return func(c net.Conn, s http.ConnState) {
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn()
		}
		f(c, s)
	}
}
