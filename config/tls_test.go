package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credbridge/credbridge/internal/testing/certs"
)

func TestTLSValidation(t *testing.T) {
	ca := certs.NewCA(t, "CA")
	dir, other := t.TempDir(), t.TempDir()
	cert, key := ca.Issue(t, "a", "127.0.0.1").Write(t, dir)
	_, otherKey := ca.Issue(t, "b", "127.0.0.1").Write(t, other)
	caFile := ca.WriteCA(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	https := []string{"CREDBRIDGE_UPSTREAM_URL=https://127.0.0.1:9001", "CREDBRIDGE_IDENTITY_URL=https://127.0.0.1:9002"}
	tests := []struct {
		name string
		env  []string
		want []string // every one must be in the error; none: valid
	}{
		{"listener pair", []string{"CREDBRIDGE_TLS_CERT_FILE=" + cert, "CREDBRIDGE_TLS_KEY_FILE=" + key, "CREDBRIDGE_TLS_CLIENT_CA_FILE=" + caFile}, nil},
		{"backends", append([]string{"CREDBRIDGE_UPSTREAM_TLS_CA_FILE=" + caFile, "CREDBRIDGE_UPSTREAM_TLS_SERVER_NAME=up.internal",
			"CREDBRIDGE_IDENTITY_TLS_CERT_FILE=" + cert, "CREDBRIDGE_IDENTITY_TLS_KEY_FILE=" + key}, https...), nil},
		{"cert without key", []string{"CREDBRIDGE_TLS_CERT_FILE=" + cert}, []string{"tls.key_file: required with tls.cert_file"}},
		{"key without cert", []string{"CREDBRIDGE_TLS_KEY_FILE=" + key}, []string{"tls.cert_file: required with tls.key_file"}},
		{"pair that does not match", []string{"CREDBRIDGE_TLS_CERT_FILE=" + cert, "CREDBRIDGE_TLS_KEY_FILE=" + otherKey},
			[]string{"tls.cert_file, tls.key_file: tls: private key does not match public key"}},
		{"missing files, each named", []string{"CREDBRIDGE_TLS_CERT_FILE=" + missing, "CREDBRIDGE_TLS_KEY_FILE=" + missing + "2"},
			[]string{"tls.cert_file: stat " + missing + ":", "tls.key_file: stat " + missing + "2:"}},
		{"client CA without TLS", []string{"CREDBRIDGE_TLS_CLIENT_CA_FILE=" + caFile}, []string{"tls.client_ca_file: requires tls.cert_file and tls.key_file"}},
		{"client CA that holds no certificate", []string{"CREDBRIDGE_TLS_CERT_FILE=" + cert, "CREDBRIDGE_TLS_KEY_FILE=" + key, "CREDBRIDGE_TLS_CLIENT_CA_FILE=" + garbage},
			[]string{"tls.client_ca_file: " + garbage + " holds no PEM certificate"}},
		{"every problem at once", append([]string{"CREDBRIDGE_TLS_CERT_FILE=" + cert, "CREDBRIDGE_UPSTREAM_TLS_CA_FILE=" + garbage,
			"CREDBRIDGE_IDENTITY_TLS_KEY_FILE=" + key}, https...),
			[]string{"tls.key_file: required with tls.cert_file", "upstream.tls.ca_file: " + garbage + " holds no PEM certificate",
				"identity.tls.cert_file: required with identity.tls.key_file"}},
		{"tls beside an http URL would go unused", []string{"CREDBRIDGE_UPSTREAM_TLS_CA_FILE=" + caFile},
			[]string{"upstream.tls: set, but upstream.url is not https://"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("", tc.env)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("error quotes the key: %v", err)
			}
		})
	}
}
