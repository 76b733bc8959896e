package config

import (
	"os"
	"strings"
	"testing"
)

const goodKey = "an-hmac-key-of-decent-length-0123456789"

// YAML mistakes are named by key path and line, never by a Go type.
func TestYAMLErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"bad duration", "upstream:\n  timeout: ten\n", []string{`upstream.timeout: cannot parse "ten" as a duration`, "line 2"}},
		{"duration without unit", "cache: {ttl: 300}\n", []string{`cache.ttl: cannot parse "300" as a duration`}},
		{"unknown top key", "listen: 127.0.0.1:1\nupstreem: {}\n", []string{"upstreem: unknown key; did you mean upstream?", "line 2"}},
		{"unknown nested key", "upstream:\n  auth:\n    moed: token\n", []string{"upstream.auth.moed: unknown key; did you mean mode?", "line 3"}},
		{"unknown deep key", "upstream: {auth: {keystone: {pasword_file: /x}}}\n", []string{"upstream.auth.keystone.pasword_file: unknown key; did you mean password_file?"}},
		{"section given a value", "upstream: 5\n", []string{"upstream: wants a mapping of keys"}},
		{"value given a mapping", "listen: {host: x}\n", []string{"listen: wants a single value, not a mapping"}},
		{"list given a value", "policy: {admin_roles: admin}\n", []string{`policy.admin_roles: wants a list ([a, b]), not a single value "admin"`}},
		{"bad list element", "policy: {rules: {update: [admin, {a: b}]}}\n", []string{"policy.rules.update[1]: wants a single value, not a mapping"}},
		{"rules given a list", "policy: {rules: [admin]}\n", []string{"policy.rules: wants a mapping, not a list"}},
		{"bad integer", "limits: {max_conns: many}\n", []string{`limits.max_conns: cannot parse "many" as an integer`}},
		{"integer overflow", "limits: {max_conns: 99999999999999999999}\n", []string{"limits.max_conns: cannot parse"}},
		{"bad bool", "debug: {pprof: maybe}\n", []string{`debug.pprof: cannot parse "maybe" as true or false`}},
		{"key twice", "listen: 127.0.0.1:1\nlisten: 0.0.0.0:1\n", []string{"listen: set twice (first on line 1)", "line 2"}},
		{"rule twice", "policy: {rules: {get: [admin], get: [owner]}}\n", []string{"policy.rules.get: a key must be a plain name, given once"}},
		{"second document", "listen: 127.0.0.1:1\n---\nlisten: 0.0.0.0:1\n", []string{"a second YAML document"}},
		{"top level list", "- a\n- b\n", []string{"(top level): wants a mapping of keys"}},
		{"huge value cut", "limits: {max_conns: " + strings.Repeat("9x", 500) + "}\n", []string{"limits.max_conns: cannot parse", `"...`}},
		{"every problem at once", "upstream: {timeout: ten, max_conns: lots}\ncache: {tll: 1s, redis_url: 'redis://r:6379'}\nlog: {level: loud}\n",
			[]string{"upstream.timeout", "upstream.max_conns", "cache.tll: unknown key", "log.level", "cache.hmac_key_file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, "c.yaml", tc.yaml), nil)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwants %q", err, w)
				}
			}
			for _, leak := range []string{"unmarshal", "time.Duration", "config.", "!!str", "reflect"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q speaks Go (%s)", err, leak)
				}
			}
			if len(err.Error()) > 2000 {
				t.Errorf("error is %d bytes", len(err.Error()))
			}
		})
	}
}

// What YAML allows stays allowed: anchors, nulls for "default", flow style.
func TestYAMLAccepted(t *testing.T) {
	c, err := Load(write(t, "c.yaml", `
listen: &addr 127.0.0.1:18080
admin_listen:
upstream:
  timeout: 1m30s
  max_conns: 64
policy:
  rules: {get: [admin, "role:auditor"]}
debug: {pprof: true}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:18080" || c.AdminListen != "127.0.0.1:9090" || c.Upstream.Timeout.String() != "1m30s" ||
		c.Upstream.MaxConns != 64 || strings.Join(c.Policy.Rules["get"], ",") != "admin,role:auditor" || !c.Debug.PProf {
		t.Fatalf("%+v", c)
	}
	if c, err := Load(write(t, "c.yaml", "# only a comment\n"), nil); err != nil || c.Listen != "127.0.0.1:8080" {
		t.Fatalf("comment-only file: %v", err)
	}
}

func TestEnvironment(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string // "" accepted, else in the error
	}{
		{"misspelt variable", []string{"CREDBRIDGE_UPSTREM_URL=http://x"}, "CREDBRIDGE_UPSTREM_URL: no such setting; did you mean CREDBRIDGE_UPSTREAM_URL?"},
		{"far from any", []string{"CREDBRIDGE_FROBNICATE=1"}, "CREDBRIDGE_FROBNICATE: no such setting"},
		{"section alone", []string{"CREDBRIDGE_UPSTREAM=x"}, "CREDBRIDGE_UPSTREAM: no such setting"},
		{"unknown rule", []string{"CREDBRIDGE_POLICY_RULES_PURGE=admin"}, "CREDBRIDGE_POLICY_RULES_PURGE: no such setting"},
		{"bad duration", []string{"CREDBRIDGE_UPSTREAM_TIMEOUT=ten"}, `CREDBRIDGE_UPSTREAM_TIMEOUT (upstream.timeout): cannot parse "ten" as a duration`},
		{"bad integer", []string{"CREDBRIDGE_LIMITS_MAX_CONNS=lots"}, `CREDBRIDGE_LIMITS_MAX_CONNS (limits.max_conns): cannot parse "lots" as an integer`},
		{"bad bool", []string{"CREDBRIDGE_DEBUG_PPROF=sure"}, "CREDBRIDGE_DEBUG_PPROF (debug.pprof)"},
		{"all reported", []string{"CREDBRIDGE_UPSTREM_URL=x", "CREDBRIDGE_CACHE_TTL=soon"}, "CREDBRIDGE_CACHE_TTL (cache.ttl)"},
		{"the config path is no key", []string{"CREDBRIDGE_CONFIG=/etc/x.yaml"}, ""},
		{"kubernetes service links", []string{"CREDBRIDGE_SERVICE_HOST=10.0.0.1", "CREDBRIDGE_SERVICE_PORT=8080",
			"CREDBRIDGE_SERVICE_PORT_HTTP=8080", "CREDBRIDGE_PORT=tcp://10.0.0.1:8080", "CREDBRIDGE_PORT_8080_TCP=tcp://10.0.0.1:8080",
			"CREDBRIDGE_PORT_8080_TCP_ADDR=10.0.0.1", "CREDBRIDGE_ADMIN_SERVICE_HOST=10.0.0.2", "CREDBRIDGE_ADMIN_PORT_9090_TCP_PORT=9090"}, ""},
		{"other prefixes ignored", []string{"UNRELATED=1", "credbridge_listen=x", "XCREDBRIDGE_LISTEN=x"}, ""},
		{"lists and rules", []string{"CREDBRIDGE_POLICY_ADMIN_ROLES=a, ,b", "CREDBRIDGE_POLICY_RULES_DELETE=admin"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load("", tc.env)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Listen != "127.0.0.1:8080" {
					t.Fatalf("listen %q", c.Listen)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	// An optional scalar (a pointer field) takes its value too; a bad one names it.
	c, err := Load("", []string{"CREDBRIDGE_MIGRATION_SAMPLE=0.25"})
	if err != nil || c.Migration.SampleRate() != 0.25 {
		t.Fatalf("CREDBRIDGE_MIGRATION_SAMPLE=0.25: %v, sample %v", err, c.Migration.SampleRate())
	}
	if _, err := Load("", []string{"CREDBRIDGE_MIGRATION_SAMPLE=half"}); err == nil || !strings.Contains(err.Error(), `migration.sample): cannot parse "half" as a number`) {
		t.Fatalf("CREDBRIDGE_MIGRATION_SAMPLE=half: %v", err)
	}
	c, err = Load("", []string{"CREDBRIDGE_POLICY_ADMIN_ROLES=a, ,b", "CREDBRIDGE_POLICY_RULES_DELETE=admin"})
	if err != nil || strings.Join(c.Policy.AdminRoles, "|") != "a|b" || strings.Join(c.Policy.Rules["delete"], "|") != "admin" {
		t.Fatalf("%v %+v", err, c)
	}
}

// cache.redis_url needs a signing key: unsigned Redis entries could be forged.
func TestRedisNeedsHMACKey(t *testing.T) {
	redis := "CREDBRIDGE_CACHE_REDIS_URL=redis://127.0.0.1:6379/0"
	tests := []struct {
		name string
		env  []string
		want []string // nil: accepted
	}{
		{"redis without key", []string{redis}, []string{"cache.redis_url", "cache.hmac_key_file", "head -c 32 /dev/urandom"}},
		{"redis with short key", []string{redis, "CREDBRIDGE_CACHE_HMAC_KEY_FILE=" + write(t, "k", "short\n")}, []string{"cache.hmac_key_file", "at least 16"}},
		{"redis with blank key", []string{redis, "CREDBRIDGE_CACHE_HMAC_KEY_FILE=" + write(t, "k", " \n\t")}, []string{"cache.hmac_key_file", "empty"}},
		{"redis with missing key", []string{redis, "CREDBRIDGE_CACHE_HMAC_KEY_FILE=/nonexistent/k"}, []string{"cache.hmac_key_file", "no such file"}},
		{"redis with key", []string{redis, "CREDBRIDGE_CACHE_HMAC_KEY_FILE=" + write(t, "k", goodKey+"\n")}, nil},
		{"key without redis", []string{"CREDBRIDGE_CACHE_HMAC_KEY_FILE=" + write(t, "k", goodKey)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load("", tc.env)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if s, _ := c.Secrets(); string(s.HMACKey) != goodKey {
					t.Fatalf("key %q", s.HMACKey)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err %v, want %q", err, w)
				}
			}
		})
	}
}

func TestPublicURL(t *testing.T) {
	accepted := []struct{ name, yaml, want string }{
		{"default from listen", "", "http://127.0.0.1:8080"},
		{"default from another listen", "listen: 127.0.0.1:18080\n", "http://127.0.0.1:18080"},
		{"wildcard listen", "listen: 0.0.0.0:8080\n", "http://localhost:8080"},
		{"empty host listen", "listen: ':8080'\n", "http://localhost:8080"},
		{"ipv6 wildcard", "listen: '[::]:8080'\n", "http://localhost:8080"},
		{"ipv6 loopback", "listen: '[::1]:8080'\n", "http://[::1]:8080"},
		{"set", "public_url: https://iam.example.com\n", "https://iam.example.com"},
		{"trailing slash dropped", "public_url: https://gw.example.com/iam/\n", "https://gw.example.com/iam"},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, "c.yaml", tc.yaml), nil)
			if err != nil || c.PublicURL != tc.want {
				t.Fatalf("%v %q, want %q", err, c.PublicURL, tc.want)
			}
		})
	}
	refused := []string{"https://iam.example.com/?next=x", "https://iam.example.com?", "https://iam.example.com/#frag",
		"https://iam.example.com#", "javascript:alert(1)", "JAVASCRIPT://x/%0aalert(1)", "ftp://iam.example.com", "//iam.example.com",
		"iam.example.com", "https://", "https://user:pw@iam.example.com", "https://iam.example.com/\x00", "data:text/html,hi", "/v3",
		"https://iam.example.com/a b", "https://iam.example.com/\u00e9", "HTTPS://iam.example.com", "https://iam.example.com/\"><x"}
	for _, v := range refused {
		t.Run("refused "+v, func(t *testing.T) {
			_, err := Load("", []string{"CREDBRIDGE_PUBLIC_URL=" + v})
			if err == nil || !strings.HasPrefix(err.Error(), "public_url: ") {
				t.Fatalf("err %v", err)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatalf("credentials echoed: %v", err)
			}
		})
	}
}

// Validate reports every problem at once, each by its key.
func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := Load(write(t, "c.yaml", `
listen: nowhere
upstream: {dialect: soap, url: 'ftp://x', timeout: 1h, max_conns: -1, auth: {mode: keystone}}
identity: {lookups: maybe}
cache: {ttl: 10s, local_ttl: 20s}
limits: {max_body_bytes: 1}
log: {level: loud}
runtime: {gomaxprocs: -1}
`), nil)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, key := range []string{"listen:", "upstream.dialect:", "upstream.url:", "upstream.timeout:", "upstream.max_conns:",
		"upstream.auth.keystone.url:", "upstream.auth.keystone.user_name:", "upstream.auth.keystone.password_file:",
		"identity.lookups:", "cache.local_ttl:", "limits.max_body_bytes:", "log.level:", "runtime.gomaxprocs:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%q not named in:\n%v", key, err)
		}
	}
	// Each line of the joined error names one key.
	for _, line := range strings.Split(err.Error(), "\n") {
		if k, _, ok := strings.Cut(line, ":"); !ok || strings.ContainsAny(k, " ") {
			t.Errorf("line %q does not start with its key", line)
		}
	}
}

// Offline validation checks that secret paths are set, and reads none.
func TestOffline(t *testing.T) {
	tokenMode := "upstream: {auth: {mode: token, token_file: /nonexistent/token}}\n"
	if _, err := Load(write(t, "c.yaml", tokenMode), nil); err == nil || !strings.Contains(err.Error(), "upstream.auth.token_file") {
		t.Fatalf("online: %v", err)
	}
	c, err := LoadOffline(write(t, "c.yaml", tokenMode), nil)
	if err != nil {
		t.Fatalf("offline: %v", err)
	}
	if _, err := c.Secrets(); err == nil || !strings.Contains(err.Error(), "upstream.auth.token_file") {
		t.Fatalf("secrets of an offline config: %v", err)
	}
	for _, tc := range []struct{ yaml, key string }{
		{"upstream: {auth: {mode: token}}\n", "upstream.auth.token_file: required"},
		{"upstream: {auth: {mode: keystone, keystone: {url: 'http://k', user_name: svc}}}\n", "upstream.auth.keystone.password_file: required"},
		{"cache: {redis_url: 'redis://r:6379'}\n", "cache.hmac_key_file"},
		{"upstream: {timeout: ten}\n", "upstream.timeout"},
	} {
		if _, err := LoadOffline(write(t, "c.yaml", tc.yaml), nil); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("offline %q: %v, want %q", tc.yaml, err, tc.key)
		}
	}
}

// Secret files are read once, by Load: what Build asks for later comes from
// memory, so a file removed after start changes nothing.
func TestSecretsReadOnce(t *testing.T) {
	tok, pw, st := write(t, "tok", " static-token \n"), write(t, "pw", "hunter2\n"), write(t, "st", "service-token")
	key := write(t, "key", goodKey)
	c, err := Load(write(t, "c.yaml", "upstream: {auth: {mode: token, token_file: "+tok+"}}\nidentity: {service_token_file: "+st+
		"}\ncache: {hmac_key_file: "+key+"}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tok, pw, st, key} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Secrets()
	if err != nil {
		t.Fatal(err)
	}
	if s.UpstreamToken != "static-token" || s.IdentityServiceToken != "service-token" || string(s.HMACKey) != goodKey || s.KeystonePassword != "" {
		t.Fatalf("%+v", s)
	}
	if strings.Contains(c.Masked(), "static-token") || strings.Contains(c.Masked(), goodKey) {
		t.Fatalf("a secret in the masked config:\n%s", c.Masked())
	}
}

// FuzzDecodeYAML: any file is decoded or refused with an error, never a panic,
// and what is accepted validates or is refused by key.
func FuzzDecodeYAML(f *testing.F) {
	for _, s := range []string{"listen: 127.0.0.1:1\n", "upstream: {timeout: ten}\n", "policy: {rules: {get: [a, {b: c}]}}\n",
		"a: &x [*x]\n", "- 1\n", "cache: !!binary aGk=\n", "listen: *nothing\n", "? [a]\n: b\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := &Config{}
		if err := decodeYAML(raw, c); err != nil {
			return
		}
		c.applyDefaults()
		_ = c.Validate()
	})
}

// A config whose secret keys change after Load reads the new files rather
// than answering with the old contents.
func TestSecretsFollowChangedKeys(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Upstream.Auth.Mode, c.Upstream.Auth.TokenFile = "token", write(t, "tok", "later-token\n")
	if s, err := c.Secrets(); err != nil || s.UpstreamToken != "later-token" {
		t.Fatalf("%v %+v", err, s)
	}
}

// With TLS on the listener the default public_url is https; offline, the TLS
// files are named but not read (they hold a private key), online they are.
func TestTLSListenerAndOffline(t *testing.T) {
	yaml := write(t, "c.yaml", "tls: {cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem}\n")
	c, err := LoadOffline(yaml, nil)
	if err != nil {
		t.Fatalf("offline: %v", err)
	}
	if c.PublicURL != "https://127.0.0.1:8080" {
		t.Fatalf("public_url %q", c.PublicURL)
	}
	if _, err := Load(yaml, nil); err == nil || !strings.Contains(err.Error(), "tls.") {
		t.Fatalf("online: %v", err)
	}
	if _, err := LoadOffline(write(t, "c.yaml", "tls: {cert_file: /nonexistent/c.pem}\n"), nil); err == nil || !strings.Contains(err.Error(), "tls.key_file") {
		t.Fatalf("half a pair offline: %v", err)
	}
}

// audit.file's directory belongs to the machine that runs the bridge: looked
// for online, not offline.
func TestAuditDirOnlineOnly(t *testing.T) {
	yaml := write(t, "c.yaml", "audit: {file: /nonexistent/dir/audit.log}\n")
	if _, err := LoadOffline(yaml, nil); err != nil {
		t.Fatalf("offline: %v", err)
	}
	if _, err := Load(yaml, nil); err == nil || !strings.Contains(err.Error(), "audit.file") {
		t.Fatalf("online: %v", err)
	}
}
