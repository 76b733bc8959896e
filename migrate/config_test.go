package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func file(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidate(t *testing.T) {
	key, short, tok := file(t, strings.Repeat("k", 32)), file(t, "short-key"), file(t, "tok")
	base := func(mut func(*Config)) Config {
		c := Config{Mode: ModeMirror, JournalKeyFile: key}
		c.Secondary.URL = "http://127.0.0.1:9003"
		c.Secondary.Flavor = "keystone"
		c.Secondary.Auth.TokenFile = tok
		c.Defaults()
		if mut != nil {
			mut(&c)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want []string // every key named
	}{
		{"valid mirror", nil, nil},
		{"off ignores the rest", func(c *Config) { c.Mode = ModeOff; c.Secondary.URL = "" }, nil},
		{"bad mode", func(c *Config) { c.Mode = "copy" }, []string{"migration.mode"}},
		{"mirror toward oscred", func(c *Config) { c.Secondary.Dialect = "oscred" }, []string{"migration.secondary.dialect: mirror needs an ec2blob"}},
		{"shadow toward oscred is fine", func(c *Config) { c.Mode = ModeShadow; c.Secondary.Dialect = "oscred" }, nil},
		{"mirror without a key", func(c *Config) { c.JournalKeyFile = "" }, []string{"migration.journal_key_file: required"}},
		{"short key", func(c *Config) { c.JournalKeyFile = short }, []string{"migration.journal_key_file:", "at least 32"}},
		{"passthrough without shared identity", func(c *Config) { c.Secondary.Auth.Mode = "passthrough" }, []string{"migration.secondary.auth.mode: passthrough"}},
		{"passthrough with shared identity", func(c *Config) { c.Secondary.Auth.Mode = "passthrough"; c.SharedIdentity = true }, nil},
		{"unreadable files", func(c *Config) {
			c.Secondary.Auth.TokenFile, c.UserMapFile = "/nonexistent/token", "/nonexistent/map"
		}, []string{"migration.secondary.auth.token_file: open /nonexistent/token", "migration.user_map_file: open /nonexistent/map"}},
		{"Validate reads no file", func(c *Config) {
			c.Secondary.Auth.TokenFile = "/nonexistent/token"
			if err := c.Validate(); err != nil {
				t.Errorf("Validate read a file: %v", err)
			}
		}, []string{"migration.secondary.auth.token_file"}},
		{"every problem at once", func(c *Config) {
			c.Secondary.URL, c.Secondary.Flavor, c.Secondary.Auth.TokenFile = "ftp://x", "aws", ""
			one := 2.0
			c.Sample, c.Journal, c.MaxLag, c.Secondary.MaxConns = &one, "sqlite:x", -1, 0
		}, []string{"migration.secondary.url", "migration.secondary.flavor", "migration.secondary.auth.token_file",
			"migration.sample", "migration.journal:", "migration.max_lag", "migration.secondary.max_conns"}},
		{"keystone auth needs its fields", func(c *Config) { c.Secondary.Auth.Mode = "keystone" }, []string{
			"migration.secondary.auth.keystone.url", "migration.secondary.auth.keystone.user_name", "migration.secondary.auth.keystone.password_file"}},
		{"bad user map", func(c *Config) { c.UserMapFile = file(t, "- {primary: a}\n") }, []string{"migration.user_map_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base(tc.mut)
			err := errors.Join(c.Validate(), c.CheckFiles())
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestUserMap(t *testing.T) {
	m, err := LoadUserMap(file(t, "- {primary: u-1, secondary: s-1, project: p-1}\n- {primary: u-2, secondary: s-2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.Secondary("u-1"); !ok || e.Secondary != "s-1" || e.Project != "p-1" {
		t.Fatalf("u-1 -> %+v %v", e, ok)
	}
	if _, ok := m.Secondary("u-3"); ok {
		t.Fatal("an unlisted user mapped")
	}
	if m.Primary("s-2") != "u-2" || m.Primary("s-9") != "" {
		t.Fatal("reverse mapping wrong")
	}
	var none *UserMap
	if e, ok := none.Secondary("u-7"); !ok || e.Secondary != "u-7" {
		t.Fatal("no map must map users to themselves")
	}
	if _, err := LoadUserMap(file(t, "- {primary: a, secondary: b}\n- {primary: a, secondary: c}\n")); err == nil {
		t.Fatal("a user listed twice accepted")
	}
}
