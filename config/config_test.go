package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.Upstream.Dialect != "oscred" || c.Upstream.Timeout != 10*time.Second ||
		c.Cache.TTL != 300*time.Second || c.Limits.MaxBodyBytes != 32768 || c.Upstream.Auth.Mode != "passthrough" ||
		strings.Join(c.Policy.AdminRoles, ",") != "secu_admin,admin" || strings.Join(c.Policy.Rules["update"], ",") != "admin,owner" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestFileAndEnv(t *testing.T) {
	p := write(t, "c.yaml", `
listen: 127.0.0.1:18080
upstream:
  dialect: ec2blob
  flavor: keystone
  url: http://up:5000
  timeout: 2s
policy:
  admin_roles: [secu_admin]
  rules:
    delete: [admin]
`)
	c, err := Load(p, []string{"CREDBRIDGE_UPSTREAM_URL=http://other:5000", "CREDBRIDGE_CACHE_TTL=60s",
		"CREDBRIDGE_POLICY_ADMIN_ROLES=a, b", "CREDBRIDGE_POLICY_RULES_GET=role:auditor", "CREDBRIDGE_LIMITS_MAX_BODY_BYTES=1024", "UNRELATED=1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream.URL != "http://other:5000" || c.Upstream.Flavor != "keystone" || c.Upstream.Timeout != 2*time.Second ||
		c.Cache.TTL != time.Minute || strings.Join(c.Policy.AdminRoles, ",") != "a,b" || c.Limits.MaxBodyBytes != 1024 ||
		strings.Join(c.Policy.Rules["get"], ",") != "role:auditor" || strings.Join(c.Policy.Rules["delete"], ",") != "admin" ||
		strings.Join(c.Policy.Rules["update"], ",") != "admin,owner" {
		t.Fatalf("loaded: %+v", c)
	}
}

func TestRefusals(t *testing.T) {
	empty := write(t, "empty", "  \n")
	tests := []struct {
		name, yaml string
		env        []string
		key        string
	}{
		{"unknown key", "listen: 127.0.0.1:1\nupstreem: {}\n", nil, "upstreem"},
		{"bad dialect", "upstream: {dialect: soap}\n", nil, "upstream.dialect"},
		{"bad flavor", "upstream: {dialect: ec2blob, flavor: aws}\n", nil, "upstream.flavor"},
		{"bad url", "upstream: {url: 'ftp://x'}\n", nil, "upstream.url"},
		{"url with credentials", "upstream: {url: 'http://u:p@x'}\n", nil, "upstream.url"},
		{"negative timeout via env", "", []string{"CREDBRIDGE_UPSTREAM_TIMEOUT=-1s"}, "upstream.timeout"},
		{"bad duration", "", []string{"CREDBRIDGE_CACHE_TTL=soon"}, "CREDBRIDGE_CACHE_TTL"},
		{"token mode without file", "upstream: {auth: {mode: token}}\n", nil, "upstream.auth.token_file"},
		{"token file empty", "upstream: {auth: {mode: token, token_file: " + empty + "}}\n", nil, "upstream.auth.token_file"},
		{"keystone mode incomplete", "upstream: {auth: {mode: keystone, keystone: {url: 'http://k'}}}\n", nil, "upstream.auth.keystone.user_name"},
		{"auth mode unknown", "upstream: {auth: {mode: magic}}\n", nil, "upstream.auth.mode"},
		{"redis scheme", "cache: {redis_url: 'http://r'}\n", nil, "cache.redis_url"},
		{"local ttl over ttl", "cache: {ttl: 10s, local_ttl: 20s}\n", nil, "cache.local_ttl"},
		{"hmac file missing", "cache: {hmac_key_file: /nonexistent/k}\n", nil, "cache.hmac_key_file"},
		{"body limit huge", "limits: {max_body_bytes: 100000000}\n", nil, "limits.max_body_bytes"},
		{"bad rule", "policy: {rules: {update: [everyone]}}\n", nil, "policy.rules.update"},
		{"bad listen", "listen: 8080\n", nil, "listen"},
		{"log level", "log: {level: loud}\n", nil, "log.level"},
		{"gomaxprocs negative", "runtime: {gomaxprocs: -1}\n", nil, "runtime.gomaxprocs"},
		{"connection cap negative", "", []string{"CREDBRIDGE_LIMITS_MAX_CONNS=-5"}, "limits.max_conns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, "c.yaml", tc.yaml), tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("err %v, want one naming %s", err, tc.key)
			}
		})
	}
}

func TestMaskedHidesRedisPassword(t *testing.T) {
	c, err := Load("", []string{"CREDBRIDGE_CACHE_REDIS_URL=redis://user:hunter2@127.0.0.1:6379/0",
		"CREDBRIDGE_CACHE_HMAC_KEY_FILE=" + write(t, "k", "an-hmac-key-of-decent-length-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	out := c.Masked()
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "redis_url:") {
		t.Fatalf("masked: %s", out)
	}
}

// The shipped files must stay valid: config.yaml, and the benchmark's config
// when ../shared is beside the checkout.
func TestShippedConfigsLoad(t *testing.T) {
	c, err := Load("../config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def, _ := Load("", nil)
	if !reflect.DeepEqual(c, def) { // config.yaml documents the defaults
		t.Fatalf("config.yaml drifted from the defaults:\n%s\nvs\n%s", c.Masked(), def.Masked())
	}
	if _, err := os.Stat("../../shared/bench/credbridge-bench.yaml"); err == nil {
		if _, err := Load("../../shared/bench/credbridge-bench.yaml", nil); err != nil {
			t.Fatal(err)
		}
	}
}
