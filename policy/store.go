package policy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// NewRedis builds a go-redis UniversalClient from a URL:
//
//	redis://[user:pass@]host:port/db            standalone (rediss:// for TLS)
//	redis://sentinel:26379/0?master_name=NAME   Sentinel (failover)
//	redis://node1:6379?addr=node2:6379&addr=... Cluster
//
// Timeouts default short (dial 500ms, read/write 200ms) and retries to none: a
// slow Redis must cost a request little, since the bridge serves without it.
func NewRedis(rawURL string) (redis.UniversalClient, error) {
	quietRedis.Do(func() { redis.SetLogger(discardRedisLog{}) })
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("cache.redis_url: %v", err)
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("cache.redis_url: %v", err)
		}
		failFast(q, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries)
		return redis.NewFailoverClient(o), nil
	case q.Has("addr"):
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("cache.redis_url: %v", err)
		}
		failFast(q, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries)
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("cache.redis_url: %v", err)
	}
	failFast(q, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries)
	return redis.NewClient(o), nil
}

// failFast sets the timeouts and retries the URL left unset.
func failFast(q url.Values, dial, read, write *time.Duration, retries *int) {
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{dial, 500 * time.Millisecond}, {read, 200 * time.Millisecond}, {write, 200 * time.Millisecond}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if !q.Has("max_retries") {
		*retries = -1
	}
}

// go-redis prints its own unstructured dial errors to stderr; the breaker below
// already reports failures as structured warnings and metrics.
var quietRedis sync.Once

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

// CacheStats are the cache's counters, for metrics and tests.
type CacheStats struct {
	L1Hits, RedisHits, Misses, NegativeHits atomic.Int64
	IdentityCalls, RedisErrors, Tampered    atomic.Int64
}

// sharedStore is the Redis level: namespaced keys derived from hashes, entries
// always MAC-signed (NewCache makes a key when none is configured), and a
// breaker so a dead Redis costs one failed call a second rather than one per
// request.
type sharedStore struct {
	rdb       redis.UniversalClient
	hmacKey   []byte
	log       *slog.Logger
	stats     *CacheStats
	openUntil atomic.Int64 // unix nanos; Redis is skipped until then
	now       func() time.Time
}

const (
	breakerPause = time.Second
	keyPrefix    = "credbridge:v1:"
)

// key derives the Redis key for a secret (a token) or an id: HMAC(key, s). The
// raw value never reaches Redis, and without the key no one can tell which
// token an entry is for.
func (s *sharedStore) key(kind, v string) string {
	m := hmac.New(sha256.New, s.hmacKey)
	m.Write(unsafe.Slice(unsafe.StringData(v), len(v)))
	return keyPrefix + kind + ":" + hex.EncodeToString(m.Sum(nil))
}

// seal signs payload for key: "v1.<mac>.<payload>". The MAC covers the key, so
// an entry copied to another key does not verify.
func (s *sharedStore) seal(key string, payload []byte) string {
	return "v1." + base64.RawURLEncoding.EncodeToString(s.mac(key, payload)) + "." + string(payload)
}

func (s *sharedStore) mac(key string, payload []byte) []byte {
	m := hmac.New(sha256.New, s.hmacKey)
	m.Write([]byte(key))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}

var errTampered = errors.New("cache entry failed verification")

// open checks an entry's form and its MAC.
func (s *sharedStore) open(key, v string) ([]byte, error) {
	if len(v) < 4 || v[:3] != "v1." {
		return nil, errTampered
	}
	rest := v[3:]
	dot := -1
	for i := 0; i < len(rest); i++ {
		if rest[i] == '.' {
			dot = i
			break
		}
	}
	if dot < 0 {
		return nil, errTampered
	}
	payload := []byte(rest[dot+1:])
	got, err := base64.RawURLEncoding.DecodeString(rest[:dot])
	if err != nil || !hmac.Equal(got, s.mac(key, payload)) {
		return nil, errTampered // an unsigned entry ("v1..") included
	}
	return payload, nil
}

func (s *sharedStore) usable() bool { return s != nil && s.now().UnixNano() >= s.openUntil.Load() }

func (s *sharedStore) failed(op string, err error) {
	s.stats.RedisErrors.Add(1)
	s.openUntil.Store(s.now().Add(breakerPause).UnixNano())
	s.log.Warn("redis unavailable; serving from the local cache and the identity service", "op", op, "err", err.Error())
}

// get returns the verified payload for key; ok is false on a miss, an error or
// a tampered entry (which is logged, never trusted).
func (s *sharedStore) get(ctx context.Context, key string) ([]byte, bool) {
	if !s.usable() {
		return nil, false
	}
	v, err := s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return nil, false
	}
	if err != nil {
		s.failed("get", err)
		return nil, false
	}
	p, err := s.open(key, v)
	if err != nil {
		s.stats.Tampered.Add(1)
		s.log.Warn("ignoring a redis cache entry that failed verification", "key", key)
		return nil, false
	}
	return p, true
}

func (s *sharedStore) set(ctx context.Context, key string, payload []byte, ttl time.Duration) {
	if !s.usable() || ttl <= 0 {
		return
	}
	if err := s.rdb.Set(ctx, key, s.seal(key, payload), ttl).Err(); err != nil {
		s.failed("set", err)
	}
}

func (s *sharedStore) del(ctx context.Context, key string) {
	if !s.usable() {
		return
	}
	if err := s.rdb.Del(ctx, key).Err(); err != nil {
		s.failed("del", err)
	}
}

// Check pings Redis for /readyz.
func (s *sharedStore) Check() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return errors.New("redis unreachable; serving from the local cache and the identity service")
	}
	return nil
}
