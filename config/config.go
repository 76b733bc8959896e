// Package config reads credbridge's YAML file, applies CREDBRIDGE_* environment
// overrides and defaults, and refuses unsafe or unreadable values with a message
// that names the key. Keys are a contract: add, don't rename.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/credbridge/credbridge/audit"
	"github.com/credbridge/credbridge/policy"
	"go.yaml.in/yaml/v3"
)

// Config is the whole file.
type Config struct {
	// Listen is the client address, both dialects. Default 127.0.0.1:8080.
	// Risk: a non-loopback address exposes the bridge; put TLS in front of it.
	Listen string `yaml:"listen"`
	// AdminListen serves /healthz, /readyz and /metrics. Default 127.0.0.1:9090.
	// Risk: metrics name operations and codes; keep it off public networks.
	AdminListen string                `yaml:"admin_listen"`
	Upstream    Upstream              `yaml:"upstream"`
	Identity    policy.IdentityConfig `yaml:"identity"`
	Cache       Cache                 `yaml:"cache"`
	Policy      policy.Config         `yaml:"policy"`
	Limits      Limits                `yaml:"limits"`
	Log         Log                   `yaml:"log"`
	Debug       Debug                 `yaml:"debug"`
	Runtime     Runtime               `yaml:"runtime"`
	// PublicURL is the base URL clients reach the bridge at, for Keystone's
	// links.self. Default "": http://<listen>. Never taken from a client's Host
	// header (a client could point other clients' links anywhere).
	PublicURL string       `yaml:"public_url"`
	Audit     audit.Config `yaml:"audit"`
	// ShutdownTimeout is how long in-flight requests may finish after SIGTERM.
	// Default 15s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// TLS of the client listener (config/tls.go). Default: plain HTTP.
	TLS TLS `yaml:"tls"`
}

// Upstream is the backend the bridge speaks to.
type Upstream struct {
	// Dialect the upstream speaks: oscred | ec2blob. Default oscred.
	Dialect string `yaml:"dialect"`
	// Flavor of an ec2blob upstream: ibm | keystone. Default ibm. Ignored for oscred.
	Flavor string `yaml:"flavor"`
	// URL is the base URL; dialect paths are appended. Default http://127.0.0.1:9001.
	// Risk: plain http beyond loopback sends tokens and secrets in clear.
	URL string `yaml:"url"`
	// Timeout for one upstream call. Default 10s; past it the client gets 504.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConns bounds the connections to the upstream. Default 512. A request
	// that finds them all busy waits for one, within Timeout, rather than
	// opening more: a burst must not become a storm of new connections that
	// overflows the upstream's accept backlog (SYNs dropped, 1 s retransmits).
	// Risk: too low queues requests behind a slow upstream (latency × MaxConns
	// is the most the bridge can carry).
	MaxConns int `yaml:"max_conns"`
	// IdleTimeout closes a pooled connection idle this long. Default 4s, below
	// the shortest common server keep-alive timeout (Apache's 5 s). Risk: above
	// the backend's own timeout the pool races the server's close (a request
	// that lands on a connection as it closes fails unless it may be resent);
	// very low opens a connection per request under light load.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	Auth        UpstreamAuth  `yaml:"auth"`
	// TLS toward an https:// upstream: CA bundle, client certificate, server name.
	TLS ClientTLS `yaml:"tls"`
}

// UpstreamAuth says which token the bridge sends upstream.
type UpstreamAuth struct {
	// Mode: passthrough (the caller's token, default) | token (TokenFile) |
	// keystone (the bridge logs in as a service user). Risk: token and keystone
	// make the upstream trust the bridge's policy alone.
	Mode string `yaml:"mode"`
	// TokenFile holds the static token for mode token.
	TokenFile string   `yaml:"token_file"`
	Keystone  Keystone `yaml:"keystone"`
}

// Keystone is the service login for upstream.auth.mode keystone.
type Keystone struct {
	URL          string `yaml:"url"`
	UserName     string `yaml:"user_name"`
	UserDomain   string `yaml:"user_domain"`
	PasswordFile string `yaml:"password_file"`
	ProjectID    string `yaml:"project_id"`
}

// Cache configures the token and key-owner caches.
type Cache struct {
	// RedisURL of the shared second level; empty: in-process only. redis:// or rediss://.
	RedisURL string `yaml:"redis_url"`
	// TTL of a Redis entry, capped by the token's expiry. Default 300s. It bounds
	// how long a revoked token keeps working.
	TTL time.Duration `yaml:"ttl"`
	// LocalTTL of an in-process entry. Default 10s.
	LocalTTL time.Duration `yaml:"local_ttl"`
	// NegativeTTL for tokens the identity service rejected. Default 30s.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// HMACKeyFile: when set, cache keys are HMAC(token) and entries are signed.
	// Risk when empty: anyone who can write to Redis can forge identities.
	HMACKeyFile string `yaml:"hmac_key_file"`
}

// Limits bound what a client may send.
type Limits struct {
	// MaxBodyBytes is the largest request body. Default 32768 (oscred's limit).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxConcurrent requests in flight; beyond it clients get 503 with
	// Retry-After in their dialect. Default 4096. Risk when high: a slow
	// upstream makes requests pile up in memory.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxConns client connections open at once, idle keep-alive ones included;
	// at the cap new connections wait in the kernel's backlog and ones idle for
	// 10 s are closed to make room (never one with a request in flight).
	// Default 4096. Each costs ~30-45 KB with GC headroom; risk when high: a
	// connection storm outgrows the memory limit (4096 peaked at 164 MB with
	// GOMEMLIMIT=200MiB, as the gateway manifest sets). Read at start.
	MaxConns int `yaml:"max_conns"`
}

// Log configures the structured log.
type Log struct {
	// Level: debug | info | warn | error. Default info.
	Level string `yaml:"level"`
}

// Runtime tunes the Go runtime.
type Runtime struct {
	// GOMAXPROCS: how many cores run Go code. Default 0: Go's choice (the CPU
	// limit of the container, else every core). On a small machine shared with
	// other busy processes 1 saves the thread wake-ups (50 vs 88 µs of CPU per
	// request, docs/performance.md); risk: it caps the bridge at one core, and on
	// a bare VM at one thread's CPU share next to many-threaded neighbours.
	GOMAXPROCS int `yaml:"gomaxprocs"`
}

// Debug holds operator aids that are off by default.
type Debug struct {
	// PProf serves /debug/pprof/ on admin_listen. Default false. Risk: profiles
	// reveal code paths and memory contents; only on a private admin port.
	PProf bool `yaml:"pprof"`
}

// Default is the configuration with every default applied.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Listen, "127.0.0.1:8080")
	def(&c.AdminListen, "127.0.0.1:9090")
	def(&c.Upstream.Dialect, "oscred")
	def(&c.Upstream.Flavor, "ibm") // read only when the dialect is ec2blob
	def(&c.Upstream.URL, "http://127.0.0.1:9001")
	defDur(&c.Upstream.Timeout, 10*time.Second)
	defDur(&c.Upstream.IdleTimeout, 4*time.Second) // upstream.DefaultIdleTimeout
	def(&c.Upstream.Auth.Mode, "passthrough")
	def(&c.Identity.URL, "http://127.0.0.1:9002")
	defDur(&c.Identity.Timeout, 3*time.Second)
	def(&c.Identity.Lookups, policy.LookupsForward)
	defDur(&c.Cache.TTL, 300*time.Second)
	defDur(&c.Cache.LocalTTL, 10*time.Second)
	defDur(&c.Cache.NegativeTTL, 30*time.Second)
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = 32 << 10
	}
	if c.Upstream.MaxConns == 0 {
		c.Upstream.MaxConns = 512
	}
	if c.Limits.MaxConcurrent == 0 {
		c.Limits.MaxConcurrent = 4096
	}
	if c.Limits.MaxConns == 0 {
		c.Limits.MaxConns = 4096
	}
	def(&c.Log.Level, "info")
	defDur(&c.ShutdownTimeout, 15*time.Second)
	c.Policy.Defaults()
}

// Load reads path (empty: defaults only), applies environment overrides from
// environ (os.Environ() form), defaults, and validates.
func Load(path string, environ []string) (*Config, error) {
	c := &Config{}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %v", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true) // a misspelt key is an error, not a silent default
		// io.EOF: an empty file means "all defaults".
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config %s: %v", path, err)
		}
	}
	if err := applyEnv(c, environ); err != nil {
		return nil, err
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate refuses values the bridge cannot run with safely.
func (c *Config) Validate() error {
	if err := checkHostPort("listen", c.Listen); err != nil {
		return err
	}
	if err := checkHostPort("admin_listen", c.AdminListen); err != nil {
		return err
	}
	if err := c.Audit.Validate(); err != nil {
		return err
	}
	switch c.Upstream.Dialect {
	case "oscred":
	case "ec2blob":
		if c.Upstream.Flavor != "ibm" && c.Upstream.Flavor != "keystone" {
			return fmt.Errorf("upstream.flavor: %q is not ibm or keystone", c.Upstream.Flavor)
		}
	default:
		return fmt.Errorf("upstream.dialect: %q is not oscred or ec2blob", c.Upstream.Dialect)
	}
	if err := checkURL("upstream.url", c.Upstream.URL); err != nil {
		return err
	}
	if err := checkDur("upstream.timeout", c.Upstream.Timeout, 10*time.Minute); err != nil {
		return err
	}
	if err := checkDur("upstream.idle_timeout", c.Upstream.IdleTimeout, 10*time.Minute); err != nil {
		return err
	}
	switch c.Upstream.Auth.Mode {
	case "passthrough":
	case "token":
		if err := checkFile("upstream.auth.token_file", c.Upstream.Auth.TokenFile); err != nil {
			return err
		}
	case "keystone":
		k := c.Upstream.Auth.Keystone
		if err := checkURL("upstream.auth.keystone.url", k.URL); err != nil {
			return err
		}
		if k.UserName == "" {
			return errors.New("upstream.auth.keystone.user_name: required with mode keystone")
		}
		if err := checkFile("upstream.auth.keystone.password_file", k.PasswordFile); err != nil {
			return err
		}
	default:
		return fmt.Errorf("upstream.auth.mode: %q is not passthrough, token or keystone", c.Upstream.Auth.Mode)
	}
	if err := checkURL("identity.url", c.Identity.URL); err != nil {
		return err
	}
	if err := checkDur("identity.timeout", c.Identity.Timeout, time.Minute); err != nil {
		return err
	}
	if l := c.Identity.Lookups; l != policy.LookupsForward && l != policy.LookupsOff {
		return fmt.Errorf("identity.lookups: %q is not forward or off", l)
	}
	if c.Identity.ServiceTokenFile != "" {
		if err := checkFile("identity.service_token_file", c.Identity.ServiceTokenFile); err != nil {
			return err
		}
	}
	if r := c.Cache.RedisURL; r != "" && !strings.HasPrefix(r, "redis://") && !strings.HasPrefix(r, "rediss://") && !strings.HasPrefix(r, "unix://") {
		return fmt.Errorf("cache.redis_url: want redis://, rediss:// or unix://, got %q", redactURL(r))
	}
	if err := checkDur("cache.ttl", c.Cache.TTL, 24*time.Hour); err != nil {
		return err
	}
	if err := checkDur("cache.local_ttl", c.Cache.LocalTTL, c.Cache.TTL); err != nil {
		return fmt.Errorf("%v (it may not exceed cache.ttl)", err)
	}
	if c.Cache.NegativeTTL < 0 || c.Cache.NegativeTTL > 10*time.Minute {
		return fmt.Errorf("cache.negative_ttl: %s is outside 0s..10m", c.Cache.NegativeTTL)
	}
	if c.Cache.HMACKeyFile != "" {
		if err := checkFile("cache.hmac_key_file", c.Cache.HMACKeyFile); err != nil {
			return err
		}
	}
	if err := errors.Join(c.validateTLS(), c.checkTLSFiles()); err != nil {
		return err
	}
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	if c.Limits.MaxBodyBytes < 256 || c.Limits.MaxBodyBytes > 1<<20 {
		return fmt.Errorf("limits.max_body_bytes: %d is outside 256..1048576", c.Limits.MaxBodyBytes)
	}
	if c.Upstream.MaxConns < 1 || c.Upstream.MaxConns > 65536 {
		return fmt.Errorf("upstream.max_conns: %d is outside 1..65536", c.Upstream.MaxConns)
	}
	if c.Limits.MaxConcurrent < 1 || c.Limits.MaxConcurrent > 1_000_000 {
		return fmt.Errorf("limits.max_concurrent: %d is outside 1..1000000", c.Limits.MaxConcurrent)
	}
	if c.Limits.MaxConns < 1 || c.Limits.MaxConns > 1_000_000 {
		return fmt.Errorf("limits.max_conns: %d is outside 1..1000000", c.Limits.MaxConns)
	}
	if c.Runtime.GOMAXPROCS < 0 || c.Runtime.GOMAXPROCS > 1024 {
		return fmt.Errorf("runtime.gomaxprocs: %d is outside 0..1024", c.Runtime.GOMAXPROCS)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	return checkDur("shutdown_timeout", c.ShutdownTimeout, 10*time.Minute)
}

func checkHostPort(key, v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%s: %q is not host:port (%v)", key, v, err)
	}
	return nil
}

func checkURL(key, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http(s) URL", key, redactURL(v))
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s: credentials, query or fragment are not allowed in the URL", key)
	}
	return nil
}

func checkDur(key string, d, max time.Duration) error {
	if d <= 0 || d > max {
		return fmt.Errorf("%s: %s is outside (0s, %s]", key, d, max)
	}
	return nil
}

func checkFile(key, path string) error {
	if path == "" {
		return fmt.Errorf("%s: required", key)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %v", key, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("%s: %s is empty", key, path)
	}
	return nil
}

// ReadSecret reads a secret file, trimming surrounding white space.
func ReadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Masked renders the effective config as YAML with secrets masked. Files are
// named, never read into the output.
func (c *Config) Masked() string {
	cp := *c
	cp.Cache.RedisURL = redactURL(cp.Cache.RedisURL)
	out, _ := yaml.Marshal(&cp)
	return string(out)
}

// applyEnv sets fields from CREDBRIDGE_<PATH> variables, PATH being the yaml keys
// joined by "_" in upper case. Lists are comma-separated.
func applyEnv(c *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CREDBRIDGE_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	return walkEnv(reflect.ValueOf(c).Elem(), "CREDBRIDGE", "", env)
}

var durType = reflect.TypeOf(time.Duration(0))

func walkEnv(v reflect.Value, prefix, path string, env map[string]string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		key := strings.TrimPrefix(path+"."+tag, ".")
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			if err := walkEnv(f, name, key, env); err != nil {
				return err
			}
			continue
		}
		if f.Kind() == reflect.Map { // policy.rules: CREDBRIDGE_POLICY_RULES_<OP>
			for _, op := range policy.Actions {
				if val, ok := env[name+"_"+strings.ToUpper(op)]; ok {
					if f.IsNil() {
						f.Set(reflect.MakeMap(f.Type()))
					}
					f.SetMapIndex(reflect.ValueOf(op), reflect.ValueOf(splitList(val)))
				}
			}
			continue
		}
		val, ok := env[name]
		if !ok {
			continue
		}
		switch {
		case f.Type() == durType:
			d, err := time.ParseDuration(val)
			if err != nil {
				return fmt.Errorf("%s (%s): %v", name, key, err)
			}
			f.SetInt(int64(d))
		case f.Kind() == reflect.String:
			f.SetString(val)
		case f.Kind() == reflect.Int64 || f.Kind() == reflect.Int:
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fmt.Errorf("%s (%s): %v", name, key, err)
			}
			f.SetInt(n)
		case f.Kind() == reflect.Bool:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("%s (%s): %v", name, key, err)
			}
			f.SetBool(b)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
			f.Set(reflect.ValueOf(splitList(val)))
		}
	}
	return nil
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
