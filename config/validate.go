package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/credbridge/credbridge/policy"
)

// Validate refuses values the bridge cannot run with safely. Each section
// checks itself; every problem is reported at once (errors.Join), each naming
// its full key. It reads no file: LoadSecrets does that.
func (c *Config) Validate() error {
	var public error
	if c.PublicURL != "" { // empty only when derived from a listen refused above
		public = checkPublicURL(c.PublicURL)
	}
	return errors.Join(
		checkHostPort("listen", c.Listen),
		checkHostPort("admin_listen", c.AdminListen),
		public,
		c.Upstream.validate(),
		validateIdentity(c.Identity),
		c.Cache.validate(),
		c.validateTLS(),
		c.Policy.Validate(),
		c.Limits.validate(),
		c.Log.validate(),
		c.Runtime.validate(),
		c.Migration.Validate(),
		c.migrationRedis(),
		checkDur("shutdown_timeout", c.ShutdownTimeout, 10*time.Minute),
	)
}

// migrationRedis: a redis journal lives on cache.redis_url.
func (c *Config) migrationRedis() error {
	if c.Migration.NeedsRedis() && c.Cache.RedisURL == "" {
		return errors.New("migration.journal: redis needs cache.redis_url (the stream lives there)")
	}
	return nil
}

func (u Upstream) validate() error {
	var errs []error
	switch u.Dialect {
	case "oscred":
	case "ec2blob":
		errs = append(errs, oneOf("upstream.flavor", u.Flavor, "ibm", "keystone"))
	default:
		errs = append(errs, oneOf("upstream.dialect", u.Dialect, "oscred", "ec2blob"))
	}
	return errors.Join(append(errs,
		checkURL("upstream.url", u.URL),
		checkDur("upstream.timeout", u.Timeout, 10*time.Minute),
		checkDur("upstream.idle_timeout", u.IdleTimeout, 10*time.Minute),
		checkRange("upstream.max_conns", int64(u.MaxConns), 1, 65536),
		u.Auth.validate(),
	)...)
}

func (a UpstreamAuth) validate() error {
	switch a.Mode {
	case "passthrough":
		return nil
	case "token":
		return required("upstream.auth.token_file", a.TokenFile, "mode token")
	case "keystone":
		k := a.Keystone
		return errors.Join(
			checkURL("upstream.auth.keystone.url", k.URL),
			required("upstream.auth.keystone.user_name", k.UserName, "mode keystone"),
			required("upstream.auth.keystone.password_file", k.PasswordFile, "mode keystone"),
		)
	}
	return oneOf("upstream.auth.mode", a.Mode, "passthrough", "token", "keystone")
}

// validateIdentity checks the identity section (its type is policy's).
func validateIdentity(i policy.IdentityConfig) error {
	return errors.Join(
		checkURL("identity.url", i.URL),
		checkDur("identity.timeout", i.Timeout, time.Minute),
		oneOf("identity.lookups", i.Lookups, policy.LookupsForward, policy.LookupsOff),
	)
}

func (c Cache) validate() error {
	var errs []error
	if r := c.RedisURL; r != "" {
		if !strings.HasPrefix(r, "redis://") && !strings.HasPrefix(r, "rediss://") && !strings.HasPrefix(r, "unix://") {
			errs = append(errs, fmt.Errorf("cache.redis_url: want redis://, rediss:// or unix://, got %q", redactURL(r)))
		}
		if c.HMACKeyFile == "" {
			errs = append(errs, errors.New("cache.redis_url is set but cache.hmac_key_file is not: Redis entries must be signed, "+
				"or whoever can write to Redis can mint an admin (generate a key: head -c 32 /dev/urandom > hmac.key)"))
		}
	}
	errs = append(errs, checkDur("cache.ttl", c.TTL, 24*time.Hour))
	if err := checkDur("cache.local_ttl", c.LocalTTL, c.TTL); err != nil {
		errs = append(errs, fmt.Errorf("%v (it may not exceed cache.ttl)", err))
	}
	if c.NegativeTTL < 0 || c.NegativeTTL > 10*time.Minute {
		errs = append(errs, fmt.Errorf("cache.negative_ttl: %s is outside 0s..10m", c.NegativeTTL))
	}
	return errors.Join(errs...)
}

func (l Limits) validate() error {
	return errors.Join(
		checkRange("limits.max_body_bytes", l.MaxBodyBytes, 256, 1<<20),
		checkRange("limits.max_concurrent", int64(l.MaxConcurrent), 1, 1_000_000),
		checkRange("limits.max_conns", int64(l.MaxConns), 1, 1_000_000),
	)
}

func (l Log) validate() error {
	return oneOf("log.level", l.Level, "debug", "info", "warn", "error")
}

func (r Runtime) validate() error {
	return checkRange("runtime.gomaxprocs", int64(r.GOMAXPROCS), 0, 1024)
}

func checkHostPort(key, v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%s: %q is not host:port (%v)", key, v, err)
	}
	return nil
}

// checkURL wants an absolute http(s) URL with a host, and no credentials,
// query or fragment (they would leak into logs or every link built from it).
func checkURL(key, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http(s) URL", key, redactURL(v))
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(v, "#") {
		return fmt.Errorf("%s: credentials, query or fragment are not allowed in the URL", key)
	}
	return nil
}

// checkPublicURL: every Keystone link the bridge hands out starts with it, so
// it must be a plain http(s) base URL, written as Go would write it (no
// spaces, raw control or non-ASCII bytes to smuggle into a client's link).
func checkPublicURL(v string) error {
	if err := checkURL("public_url", v); err != nil {
		return err
	}
	if u, _ := url.Parse(v); u.String() != v {
		return fmt.Errorf("public_url: %q is not written plainly; did you mean %q?", v, u.String())
	}
	return nil
}

func checkDur(key string, d, max time.Duration) error {
	if d <= 0 || d > max {
		return fmt.Errorf("%s: %s is outside (0s, %s]", key, d, max)
	}
	return nil
}

func checkRange(key string, n, lo, hi int64) error {
	if n < lo || n > hi {
		return fmt.Errorf("%s: %d is outside %d..%d", key, n, lo, hi)
	}
	return nil
}

func required(key, v, when string) error {
	if v == "" {
		return fmt.Errorf("%s: required with %s", key, when)
	}
	return nil
}

func oneOf(key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s: %q is not one of %s", key, v, strings.Join(allowed, ", "))
}
