// Package config reads credbridge's YAML file, applies CREDBRIDGE_* environment
// overrides and defaults, and refuses unsafe or unreadable values with a message
// that names the key. Keys are a contract: add, don't rename.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/credbridge/credbridge/audit"
	"github.com/credbridge/credbridge/migrate"
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
	AdminListen string `yaml:"admin_listen"`
	// PublicURL is the base URL clients reach the bridge by: Keystone
	// links.self are built from it, never from a client's Host header.
	// Default http://<listen> (https:// when tls.cert_file is set; a wildcard
	// host such as 0.0.0.0 becomes localhost). An absolute http(s) URL, no
	// query or fragment; a trailing slash is dropped. Risk: behind a load
	// balancer or on 0.0.0.0 the default names an address clients cannot use;
	// set it to the name they do.
	PublicURL string                `yaml:"public_url"`
	Upstream  Upstream              `yaml:"upstream"`
	Identity  policy.IdentityConfig `yaml:"identity"`
	Cache     Cache                 `yaml:"cache"`
	Policy    policy.Config         `yaml:"policy"`
	Limits    Limits                `yaml:"limits"`
	Log       Log                   `yaml:"log"`
	Debug     Debug                 `yaml:"debug"`
	Runtime   Runtime               `yaml:"runtime"`
	// Audit is the trail of key operations (audit/).
	Audit audit.Config `yaml:"audit"`
	// Migration keeps a second cloud in step (migrate/, migration.md).
	Migration migrate.Config `yaml:"migration"`
	// ShutdownTimeout is how long in-flight requests may finish after SIGTERM.
	// Default 15s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// TLS of the client listener (config/tls.go). Default: plain HTTP.
	TLS TLS `yaml:"tls"`

	// secrets are the files' contents, read once by Load (nil: not read).
	secrets *loadedSecrets
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
	// HMACKeyFile: cache keys are HMAC(token) and entries are signed with its
	// contents (at least 16 bytes; e.g. head -c 32 /dev/urandom > hmac.key).
	// Required with RedisURL: anyone who can write to an unsigned Redis could
	// mint an admin identity.
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
	def(&c.PublicURL, c.defaultPublicURL())
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	c.Migration.Defaults()
}

// defaultPublicURL is http(s)://<listen>, a wildcard host made localhost: no
// client can dial 0.0.0.0 from elsewhere, so an operator serving beyond
// loopback sets public_url.
func (c *Config) defaultPublicURL() string {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "" // listen is refused by Validate; so is this empty URL
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return c.listenScheme() + "://" + net.JoinHostPort(host, port)
}

// listenScheme is the client listener's scheme.
func (c *Config) listenScheme() string {
	if c.TLS.Enabled() {
		return "https"
	}
	return "http"
}

// Load reads path (empty: defaults only), applies CREDBRIDGE_* overrides from
// environ (os.Environ() form) and defaults, validates, and reads the secret
// files once (Secrets). Every problem found is reported, each naming its key.
func Load(path string, environ []string) (*Config, error) {
	return load(path, environ, true)
}

// LoadOffline is Load without reading secret files: it checks only that their
// paths are set where required (check-config --offline, for CI without the
// secrets). The result's Secrets reads the files when asked.
func LoadOffline(path string, environ []string) (*Config, error) {
	return load(path, environ, false)
}

func load(path string, environ []string, readSecrets bool) (*Config, error) {
	c := &Config{}
	var yamlErr error
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %v", err)
		}
		if err := decodeYAML(raw, c); err != nil {
			yamlErr = fmt.Errorf("config %s: %w", path, err)
		}
	}
	envErr := applyEnv(c, environ)
	// A key that failed to decode keeps its default, so validating the rest
	// still reports their problems, all in one go.
	c.applyDefaults()
	err := errors.Join(yamlErr, envErr, c.Validate())
	if readSecrets { // the files: secrets, TLS beside them, the audit trail's directory
		err = errors.Join(err, c.LoadSecrets(), c.checkTLSFiles(), c.Audit.Validate(), c.Migration.CheckFiles())
	}
	if err != nil {
		return nil, err
	}
	return c, nil
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
