package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinHMACKeyBytes is the shortest cache.hmac_key_file accepted: a key short
// enough to guess lets whoever can write to Redis sign entries.
const MinHMACKeyBytes = 16

// Secrets are the contents of the files the config names, white space
// trimmed. Empty where the file is not needed.
type Secrets struct {
	// UpstreamToken is upstream.auth.token_file's (mode token).
	UpstreamToken string
	// KeystonePassword is upstream.auth.keystone.password_file's (mode keystone).
	KeystonePassword string
	// IdentityServiceToken is identity.service_token_file's.
	IdentityServiceToken string
	// HMACKey is cache.hmac_key_file's.
	HMACKey []byte
}

// secretFile is one file the config may name: its key, its path, where its
// contents go, and whether this config needs it.
type secretFile struct {
	key, path string
	needed    bool
	min       int // bytes; 1 unless a short value is a weakness
	set       func(*Secrets, []byte)
}

func (c *Config) secretFiles() []secretFile {
	mode := c.Upstream.Auth.Mode
	return []secretFile{
		{"upstream.auth.token_file", c.Upstream.Auth.TokenFile, mode == "token", 1,
			func(s *Secrets, b []byte) { s.UpstreamToken = string(b) }},
		{"upstream.auth.keystone.password_file", c.Upstream.Auth.Keystone.PasswordFile, mode == "keystone", 1,
			func(s *Secrets, b []byte) { s.KeystonePassword = string(b) }},
		{"identity.service_token_file", c.Identity.ServiceTokenFile, c.Identity.ServiceTokenFile != "", 1,
			func(s *Secrets, b []byte) { s.IdentityServiceToken = string(b) }},
		{"cache.hmac_key_file", c.Cache.HMACKeyFile, c.Cache.HMACKeyFile != "", MinHMACKeyBytes,
			func(s *Secrets, b []byte) { s.HMACKey = b }},
	}
}

// LoadSecrets reads every secret file this config needs, once, and keeps the
// contents for Secrets. Each unreadable, empty or too short file is reported
// by its key. Required-but-unset paths are Validate's to report.
func (c *Config) LoadSecrets() error {
	s, err := c.readSecrets()
	if err != nil {
		return err
	}
	c.secrets = &loadedSecrets{from: c.secretSources(), Secrets: s}
	return nil
}

// loadedSecrets remembers which files they came from.
type loadedSecrets struct {
	from string
	*Secrets
}

// Secrets returns what LoadSecrets (run by Load) read. For a config loaded
// offline or built in code, or one whose secret keys changed since, it reads
// the files now.
func (c *Config) Secrets() (*Secrets, error) {
	if c.secrets != nil && c.secrets.from == c.secretSources() {
		return c.secrets.Secrets, nil
	}
	return c.readSecrets()
}

// secretSources names the files this config needs, in order.
func (c *Config) secretSources() string {
	var b strings.Builder
	for _, f := range c.secretFiles() {
		if f.needed {
			b.WriteString(f.key + "=" + f.path + "\n")
		}
	}
	return b.String()
}

func (c *Config) readSecrets() (*Secrets, error) {
	s := &Secrets{}
	var errs []error
	for _, f := range c.secretFiles() {
		if !f.needed || f.path == "" {
			continue
		}
		b, err := readSecretFile(f.path)
		if err == nil && len(b) < f.min {
			err = fmt.Errorf("%s holds %d bytes; want at least %d (head -c 32 /dev/urandom > %s)", f.path, len(b), f.min, f.path)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", f.key, err))
			continue
		}
		f.set(s, b)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func readSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if b = bytes.TrimSpace(b); len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, nil
}

// ReadSecret reads a secret file, trimming surrounding white space.
func ReadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}
