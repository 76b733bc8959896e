package config

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/credbridge/credbridge/internal/tlsconf"
)

// TLS is the client listener's TLS. All empty (the default): plain HTTP on
// listen — fine on loopback (a sidecar), a risk anywhere else, since tokens and
// secret keys cross the network in clear.
type TLS struct {
	// CertFile and KeyFile are the server certificate (chain) and key, PEM;
	// both or neither. Set: listen serves HTTPS only (TLS 1.2+, HTTP/1.1).
	// The files are re-read when they change (looked at once a second) and
	// on SIGHUP, without a restart; a pair that does not load keeps the old
	// one serving. Risk: the key file is a secret; keep it 0600.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile is a PEM bundle; set, every client must present a
	// certificate one of these CAs signed (mTLS), else the handshake fails.
	// Default empty: no client certificate asked. Re-read with the pair.
	// Risk: a public CA here admits anyone holding one of its certificates.
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether the listener serves HTTPS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// ClientTLS is how the bridge connects to a backend over https
// (upstream.tls, identity.tls); see tlsconf.ClientTLS. It lives in a leaf
// package so that policy, which config imports, can hold one too.
type ClientTLS = tlsconf.ClientTLS

// validate reports what is wrong with the listener's keys themselves; it
// reads no file (checkFiles does).
func (t TLS) validate(prefix string) error {
	errs := []error{tlsconf.PairSet(prefix, t.CertFile, t.KeyFile)}
	if t.ClientCAFile != "" && !t.Enabled() {
		errs = append(errs, fmt.Errorf("%s.client_ca_file: requires %s.cert_file and %s.key_file (mTLS is TLS)", prefix, prefix, prefix))
	}
	return errors.Join(errs...)
}

// checkFiles reads the listener's files: the pair loads, the CA bundle holds
// a certificate.
func (t TLS) checkFiles(prefix string) error {
	errs := []error{tlsconf.CheckPairFiles(prefix, t.CertFile, t.KeyFile)}
	if t.ClientCAFile != "" {
		if _, err := tlsconf.LoadPool(t.ClientCAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s.client_ca_file: %v", prefix, err))
		}
	}
	return errors.Join(errs...)
}

// validateTLS checks the keys of tls, upstream.tls and identity.tls, and
// that a backend's tls is not set beside an http:// URL, where it would go
// unused. It reads no file.
func (c *Config) validateTLS() error {
	return errors.Join(
		c.TLS.validate("tls"),
		clientTLS("upstream", c.Upstream.URL, c.Upstream.TLS),
		clientTLS("identity", c.Identity.URL, c.Identity.TLS),
	)
}

// checkTLSFiles reads every file the tls keys name (certificates, keys, CA
// bundles) and reports each that is unreadable or does not parse, by key —
// with the secret files, so an offline check skips it.
func (c *Config) checkTLSFiles() error {
	return errors.Join(
		c.TLS.checkFiles("tls"),
		c.Upstream.TLS.CheckFiles("upstream.tls"),
		c.Identity.TLS.CheckFiles("identity.tls"),
	)
}

func clientTLS(prefix, rawURL string, t ClientTLS) error {
	if t.IsZero() {
		return nil
	}
	err := t.Validate(prefix + ".tls")
	if u, perr := url.Parse(rawURL); perr == nil && u.Scheme != "https" {
		err = errors.Join(err, fmt.Errorf("%s.tls: set, but %s.url is not https://", prefix, prefix))
	}
	return err
}
