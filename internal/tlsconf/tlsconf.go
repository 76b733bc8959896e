// Package tlsconf turns PEM files named in the config into crypto/tls settings,
// and keeps them current while the files change (certificates are rotated in
// place by cert-manager, Vault agents and the like; a restart for each rotation
// would drop connections). It is a leaf: config and policy both use it, and it
// imports neither.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
)

// ClientTLS is how the bridge connects to one backend over https: whom to
// trust, and the certificate it presents. Every field is empty by default:
// the system's roots, no client certificate, the URL's host as server name.
type ClientTLS struct {
	// CAFile is a PEM bundle of the CAs the backend's certificate must chain
	// to; it replaces the system roots. Default empty: the system roots.
	// Risk: a broad bundle trusts more than the backend's own CA.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate presented when the
	// backend asks for one (mTLS); both or neither. The files are re-read
	// when they change. Risk: the key file is a secret; keep it 0600.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName the backend's certificate must name. Default empty: the
	// URL's host. Set it when the URL is an IP or an alias the certificate
	// does not name — never skip verification instead.
	ServerName string `yaml:"server_name"`
}

// IsZero reports whether nothing is set.
func (c ClientTLS) IsZero() bool { return c == ClientTLS{} }

// Validate reports what is wrong with the keys themselves (a certificate
// without its key), each naming its key under prefix (e.g. "upstream.tls").
// It reads no file: CheckFiles does.
func (c ClientTLS) Validate(prefix string) error { return PairSet(prefix, c.CertFile, c.KeyFile) }

// CheckFiles reads the files the keys name and reports every one that is
// unreadable or does not parse, each by its key.
func (c ClientTLS) CheckFiles(prefix string) error {
	errs := []error{CheckPairFiles(prefix, c.CertFile, c.KeyFile)}
	if c.CAFile != "" {
		if _, err := LoadPool(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s.ca_file: %v", prefix, err))
		}
	}
	return errors.Join(errs...)
}

// Config is the client side crypto/tls config: TLS 1.2 or later, the CA
// bundle, the client certificate (re-read when its files change, at most once
// a second), and ServerName or else defaultServerName.
func (c ClientTLS) Config(defaultServerName string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if tc.ServerName == "" {
		tc.ServerName = defaultServerName
	}
	if c.CAFile != "" {
		pool, err := LoadPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %v", err)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		pair, err := NewWatched(func() (*tls.Certificate, error) { return LoadPair(c.CertFile, c.KeyFile) }, nil, c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file, key_file: %v", err)
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return pair.Get(), nil }
	}
	return tc, nil
}

// ForURL is Config with the host of rawURL as the default server name, or
// nil when nothing is set (the caller's own defaults: the system roots).
func (c ClientTLS) ForURL(rawURL string) (*tls.Config, error) {
	if c.IsZero() {
		return nil, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	return c.Config(u.Hostname())
}

// PairSet checks that prefix.cert_file and prefix.key_file are both set or
// neither.
func PairSet(prefix, certFile, keyFile string) error {
	switch {
	case certFile != "" && keyFile == "":
		return fmt.Errorf("%s.key_file: required with %s.cert_file", prefix, prefix)
	case certFile == "" && keyFile != "":
		return fmt.Errorf("%s.cert_file: required with %s.key_file", prefix, prefix)
	}
	return nil
}

// CheckPairFiles, when both are set, checks that prefix.cert_file and
// prefix.key_file are readable and hold a matching certificate and key.
func CheckPairFiles(prefix, certFile, keyFile string) error {
	if certFile == "" || keyFile == "" {
		return nil // PairSet's to report
	}
	var errs []error
	for key, path := range map[string]string{"cert_file": certFile, "key_file": keyFile} {
		if _, err := os.Stat(path); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %v", prefix, key, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if _, err := LoadPair(certFile, keyFile); err != nil {
		return fmt.Errorf("%s.cert_file, %s.key_file: %v", prefix, prefix, err)
	}
	return nil
}

// LoadPair reads a PEM certificate (chain) and its private key. The error
// never quotes the key file's content.
func LoadPair(certFile, keyFile string) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &pair, nil
}

// LoadPool reads a PEM bundle of CA certificates; a file without one is an
// error (an empty pool would trust nothing and fail every handshake later,
// far from the cause).
func LoadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
