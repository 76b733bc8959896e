package policy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/internal/testing/redistest"
	"github.com/credbridge/credbridge/policy"
)

// identity runs the reference identity service; down makes it answer 503.
type identity struct {
	dir  *emulator.Directory
	srv  *httptest.Server
	idn  *emulator.Identity
	down atomic.Bool
}

func newIdentity(t testing.TB) *identity {
	i := &identity{dir: emulator.NewDirectory(emulator.DemoUsers())}
	i.idn = emulator.NewIdentity(i.dir)
	h := i.idn.Handler()
	i.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(i.srv.Close)
	return i
}

func (i *identity) calls() int64 { return i.idn.Requests() }

func (i *identity) client() policy.Validator {
	return policy.NewIdentityClient(policy.IdentityConfig{URL: i.srv.URL, Timeout: time.Second}, "", nil)
}

func newCache(t testing.TB, i *identity, redisURL string, key []byte) *policy.Cache {
	o := policy.CacheOptions{TTL: 300 * time.Second, LocalTTL: 10 * time.Second, NegativeTTL: 30 * time.Second, HMACKey: key}
	if redisURL != "" {
		rdb, err := policy.NewRedis(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		o.Redis = rdb
	}
	return policy.NewCache(i.client(), o)
}

var ctx = context.Background()

const aliceToken = "demo-alice-token"

func TestLocalHitsAndExpiry(t *testing.T) {
	i := newIdentity(t)
	c := newCache(t, i, "", nil)
	for n := 0; n < 5; n++ {
		id, src, err := c.Lookup(ctx, "demo-alice-token")
		if err != nil || id.UserID != "u-alice" {
			t.Fatal(err)
		}
		if want := map[bool]policy.Source{true: policy.SourceMiss, false: policy.SourceL1}[n == 0]; src != want {
			t.Fatalf("lookup %d from %s", n, src)
		}
	}
	if i.calls() != 1 {
		t.Fatalf("%d identity calls for one token", i.calls())
	}
	// An entry never outlives its token: expiry is checked on every hit.
	short := i.dir.Issue("u-bob", 1200*time.Millisecond)
	if _, _, err := c.Lookup(ctx, short); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1300 * time.Millisecond)
	if _, _, err := c.Lookup(ctx, short); !errors.Is(err, policy.ErrInvalidToken) {
		t.Fatalf("expired token answered %v", err)
	}
}

func TestConcurrentMissesMakeOneCall(t *testing.T) {
	i := newIdentity(t)
	c := newCache(t, i, "", nil)
	tok := i.dir.Issue("u-alice", time.Hour)
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := make(chan struct{})
	for n := 0; n < 1000; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if id, err := c.Validate(ctx, tok); err != nil || id.UserID != "u-alice" {
				failed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if failed.Load() != 0 || i.calls() != 1 {
		t.Fatalf("%d failed, %d identity calls for 1000 concurrent requests", failed.Load(), i.calls())
	}
}

func TestNegativeCacheButNeverErrors(t *testing.T) {
	i := newIdentity(t)
	c := newCache(t, i, "", nil)
	for n := 0; n < 3; n++ {
		if _, _, err := c.Lookup(ctx, "not-a-real-token"); !errors.Is(err, policy.ErrInvalidToken) {
			t.Fatal(err)
		}
	}
	if i.calls() != 1 {
		t.Fatalf("rejections not cached: %d calls", i.calls())
	}
	i.down.Store(true)
	for n := 0; n < 2; n++ {
		if _, _, err := c.Lookup(ctx, "demo-bob-token"); !errors.Is(err, policy.ErrUnavailable) {
			t.Fatalf("identity down: %v", err)
		}
	}
	i.down.Store(false)
	if id, _, err := c.Lookup(ctx, "demo-bob-token"); err != nil || id.UserID != "u-bob" {
		t.Fatalf("an outage was cached: %v", err)
	}
	// Identity down: cached tokens keep working.
	i.down.Store(true)
	if _, src, err := c.Lookup(ctx, "demo-bob-token"); err != nil || src != policy.SourceL1 {
		t.Fatalf("cached token during an outage: %v %s", err, src)
	}
}

func TestRedisSharedAcrossProcessesWithoutRawTokens(t *testing.T) {
	r := redistest.Start(t)
	i := newIdentity(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	a, b := newCache(t, i, r.URL(), key), newCache(t, i, r.URL(), key)
	if _, src, err := a.Lookup(ctx, aliceToken); err != nil || src != policy.SourceMiss {
		t.Fatal(err, src)
	}
	id, src, err := b.Lookup(ctx, aliceToken)
	if err != nil || src != policy.SourceRedis || id.UserID != "u-alice" || !id.HasRole("member") {
		t.Fatalf("second bridge: %v %s %+v", err, src, id)
	}
	if i.calls() != 1 {
		t.Fatalf("%d identity calls across two bridges", i.calls())
	}
	keys := r.Keys()
	if len(keys) != 1 {
		t.Fatalf("keys %v", keys)
	}
	for _, k := range keys {
		v, _ := r.Do("GET", k)
		if strings.Contains(k, aliceToken) || strings.Contains(v, aliceToken) {
			t.Fatalf("raw token in Redis: %s = %s", k, v)
		}
		ttl, _ := r.Do("PTTL", k)
		if ttl == "-1" || len(ttl) > 6 { // at most 300,000 ms
			t.Fatalf("entry life %s ms", ttl)
		}
	}
}

func TestEntryLifeCappedByTokenExpiry(t *testing.T) {
	r := redistest.Start(t)
	i := newIdentity(t)
	c := newCache(t, i, r.URL(), nil)
	tok := i.dir.Issue("u-bob", 5*time.Second)
	if _, _, err := c.Lookup(ctx, tok); err != nil {
		t.Fatal(err)
	}
	keys := r.Keys()
	if len(keys) != 1 {
		t.Fatalf("keys %v", keys)
	}
	ttl, _ := r.Do("PTTL", keys[0])
	if len(ttl) > 4 || ttl == "-1" { // under 10,000 ms, though cache.ttl is 300 s
		t.Fatalf("entry outlives its token: %s ms", ttl)
	}
}

func TestTamperedAndForeignEntriesAreMisses(t *testing.T) {
	r := redistest.Start(t)
	i := newIdentity(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	writer := newCache(t, i, r.URL(), key)
	if _, _, err := writer.Lookup(ctx, "demo-bob-token"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := writer.Lookup(ctx, "demo-alice-token"); err != nil {
		t.Fatal(err)
	}
	var bobKey, aliceKey string
	for _, k := range r.Keys() {
		v, _ := r.Do("GET", k)
		if strings.Contains(v, "u-bob") {
			bobKey = k
		} else {
			aliceKey = k
		}
	}
	// Tamper: give bob an admin role, keeping the old MAC.
	v, _ := r.Do("GET", bobKey)
	if _, err := r.Do("SET", bobKey, strings.Replace(v, `"member"`, `"secu_admin"`, 1)); err != nil {
		t.Fatal(err)
	}
	// Foreign: alice's key now holds bob's (validly signed) entry.
	if _, err := r.Do("SET", aliceKey, v); err != nil {
		t.Fatal(err)
	}
	reader := newCache(t, i, r.URL(), key)
	before := i.calls()
	id, src, err := reader.Lookup(ctx, "demo-bob-token")
	if err != nil || src != policy.SourceMiss || id.HasRole("secu_admin") {
		t.Fatalf("tampered entry trusted: %v %s %+v", err, src, id)
	}
	id, src, err = reader.Lookup(ctx, "demo-alice-token")
	if err != nil || src != policy.SourceMiss || id.UserID != "u-alice" {
		t.Fatalf("foreign entry trusted: %v %s %+v", err, src, id)
	}
	if i.calls()-before != 2 || reader.Stats.Tampered.Load() != 2 {
		t.Fatalf("calls %d tampered %d", i.calls()-before, reader.Stats.Tampered.Load())
	}
	// A reader with another key (or none configured where one was) trusts nothing signed.
	other := newCache(t, i, r.URL(), []byte("another-key-another-key-another-"))
	if _, src, _ := other.Lookup(ctx, "demo-bob-token"); src != policy.SourceMiss {
		t.Fatalf("entry signed with another key trusted: %s", src)
	}
}

func TestRedisDownAndBack(t *testing.T) {
	r := redistest.Start(t)
	i := newIdentity(t)
	c := newCache(t, i, r.URL(), nil)
	if _, _, err := c.Lookup(ctx, "demo-alice-token"); err != nil {
		t.Fatal(err)
	}
	if c.Check() != nil {
		t.Fatal("redis reported down while up")
	}
	r.Stop()
	// Cached tokens and new ones keep working; the outage is reported.
	if _, src, err := c.Lookup(ctx, "demo-alice-token"); err != nil || src != policy.SourceL1 {
		t.Fatalf("cached token with redis down: %v %s", err, src)
	}
	if id, _, err := c.Lookup(ctx, "demo-bob-token"); err != nil || id.UserID != "u-bob" {
		t.Fatalf("new token with redis down: %v", err)
	}
	if c.Stats.RedisErrors.Load() == 0 || c.Check() == nil {
		t.Fatalf("outage not reported: %d errors", c.Stats.RedisErrors.Load())
	}
	r.Restart()
	// After the breaker's pause the cache writes to Redis again by itself.
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; len(r.Keys()) == 0; n++ {
		if time.Now().After(deadline) {
			t.Fatal("never reconnected to redis")
		}
		tok := i.dir.Issue("u-alice", time.Hour)
		if _, _, err := c.Lookup(ctx, tok); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if c.Check() != nil {
		t.Fatal("still reported down")
	}
}

func TestRedisUnreachableAtStart(t *testing.T) {
	i := newIdentity(t)
	c := newCache(t, i, "redis://127.0.0.1:1/0", nil)
	if id, _, err := c.Lookup(ctx, "demo-alice-token"); err != nil || id.UserID != "u-alice" {
		t.Fatalf("%v", err)
	}
	if c.Check() == nil {
		t.Fatal("unreachable redis reported healthy")
	}
}

func TestNoFailuresForCachedTokensWhileRedisDies(t *testing.T) {
	r := redistest.Start(t)
	i := newIdentity(t)
	c := newCache(t, i, r.URL(), nil)
	tokens := []string{"demo-alice-token", "demo-bob-token", "demo-admin-token"}
	for _, tok := range tokens {
		if _, _, err := c.Lookup(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	var failed, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Validate(ctx, tokens[n%len(tokens)]); err != nil {
					failed.Add(1)
				}
				done.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	r.Stop()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || done.Load() == 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), done.Load())
	}
}

func TestOwnerCacheTwoLevels(t *testing.T) {
	r := redistest.Start(t)
	i := newIdentity(t)
	a := newCache(t, i, r.URL(), []byte("k")).Owners("http://up")
	b := newCache(t, i, r.URL(), []byte("k")).Owners("http://up")
	otherUp := newCache(t, i, r.URL(), []byte("k")).Owners("http://other")
	a.Set(ctx, "AK1", "u-alice")
	if o, ok := b.Get(ctx, "AK1"); !ok || o != "u-alice" {
		t.Fatalf("shared owner: %q %v", o, ok)
	}
	if _, ok := otherUp.Get(ctx, "AK1"); ok {
		t.Fatal("owner leaked across upstreams")
	}
	for _, k := range r.Keys() {
		if strings.Contains(k, "AK1") {
			t.Fatalf("key id in a redis key: %s", k)
		}
	}
	a.Forget(ctx, "AK1")
	if _, ok := a.Get(ctx, "AK1"); ok {
		t.Fatal("forgotten locally but still there")
	}
	if len(r.Keys()) != 0 {
		t.Fatalf("forgotten owner still in redis: %v", r.Keys())
	}
}

// warmCache is a cache holding alice's token.
func warmCache(b *testing.B) *policy.Cache {
	c := newCache(b, newIdentity(b), "", nil)
	if _, err := c.Validate(ctx, aliceToken); err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkL1Hit(b *testing.B) {
	c := warmCache(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Validate(ctx, "demo-alice-token"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkL1HitParallel(b *testing.B) {
	c := warmCache(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Validate(ctx, "demo-alice-token"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkThousandConcurrentNewToken reports identity calls per 1,000
// concurrent first requests for one token (the target is exactly 1).
func BenchmarkThousandConcurrentNewToken(b *testing.B) {
	i := newIdentity(b)
	c := newCache(b, i, "", nil)
	var calls, rounds int64
	for b.Loop() {
		tok := i.dir.Issue("u-alice", time.Hour)
		before := i.calls()
		var wg sync.WaitGroup
		for n := 0; n < 1000; n++ {
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = c.Validate(ctx, tok) }()
		}
		wg.Wait()
		n := i.calls() - before
		if n != 1 {
			b.Fatalf("round %d: %d identity calls for one new token", rounds, n)
		}
		calls += n
		rounds++
	}
	b.ReportMetric(float64(calls)/float64(rounds), "identity-calls/1000-requests")
}

// TestUnsignedRedisEntriesNeverHonoured: an entry written into Redis by anyone
// who can reach it, in the old unsigned form at the old unkeyed name, mints
// nothing, even for a cache built without an HMAC key.
func TestUnsignedRedisEntriesNeverHonoured(t *testing.T) {
	r := redistest.Start(t)
	i := newIdentity(t)
	sum := sha256.Sum256([]byte("demo-bob-token"))
	forged := `v1..{"u":"u-admin","r":["secu_admin"],"e":` + strconv.FormatInt(time.Now().Add(time.Hour).UnixNano(), 10) + `}`
	if _, err := r.Do("SET", "credbridge:v1:tok:"+hex.EncodeToString(sum[:]), forged); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, i, r.URL(), nil)
	before := i.calls()
	id, src, err := c.Lookup(ctx, "demo-bob-token")
	if err != nil || id.UserID != "u-bob" || id.HasRole("secu_admin") || src != policy.SourceMiss || i.calls()-before != 1 {
		t.Fatalf("forged entry honoured: %v %s %+v", err, src, id)
	}
	for _, k := range r.Keys() {
		if v, _ := r.Do("GET", k); strings.HasPrefix(v, "v1..") && k != "credbridge:v1:tok:"+hex.EncodeToString(sum[:]) {
			t.Fatalf("the cache wrote an unsigned entry %s = %s", k, v)
		}
	}
}
