package policy

import (
	"context"
	"crypto/sha256"
	"strings"
	"time"
)

// OwnerCache remembers which user owns a key (by the upstream's id for it), in
// process and in Redis, so repeated updates by a key's owner cost no upstream
// GET. A key never changes owner, so an entry can only go stale when the key is
// deleted behind the bridge's back: the TTL bounds that, and deletes through the
// bridge forget at once in both levels. Both levels keep an entry for the full
// TTL for that reason.
type OwnerCache struct {
	l1     *local[ownerEntry]
	shared *sharedStore
	ns     string
	ttl    time.Duration
	now    func() time.Time
}

type ownerEntry struct {
	owner   string
	expires int64
}

// Owners is the owner cache sharing c's Redis level. namespace separates
// upstreams that share one Redis (the upstream URL is a good one).
func (c *Cache) Owners(namespace string) *OwnerCache {
	return &OwnerCache{l1: newLocal[ownerEntry](c.opt.MaxLocalEntries), shared: c.shared, ns: namespace, ttl: c.opt.TTL, now: c.opt.Now}
}

// NewLocalOwnerCache is an in-process owner cache with entries living ttl.
func NewLocalOwnerCache(ttl time.Duration) *OwnerCache {
	return &OwnerCache{l1: newLocal[ownerEntry](100_000), ttl: ttl, now: time.Now}
}

func (o *OwnerCache) name(id string) string { return o.ns + "\x00" + id }

// l1Key hashes namespace and id through a stack buffer: no allocation on the
// hot path (an owner's repeated update).
func (o *OwnerCache) l1Key(id string) [32]byte {
	var buf [320]byte
	b := append(buf[:0], o.ns...)
	b = append(b, 0)
	return sha256.Sum256(append(b, id...))
}

// Get returns the owner of id, from either level.
func (o *OwnerCache) Get(ctx context.Context, id string) (string, bool) {
	k := o.l1Key(id)
	now := o.now()
	if e, ok := o.l1.get(k); ok && now.UnixNano() < e.expires {
		return e.owner, true
	}
	if o.shared == nil {
		return "", false
	}
	p, ok := o.shared.get(ctx, o.shared.key("own", o.name(id)))
	if !ok || len(p) == 0 {
		return "", false
	}
	owner := string(p)
	o.l1.set(k, ownerEntry{owner: owner, expires: now.Add(o.ttl).UnixNano()})
	return owner, true
}

// Set records the owner of id in both levels.
func (o *OwnerCache) Set(ctx context.Context, id, owner string) {
	if id == "" || owner == "" {
		return
	}
	// Callers read owners zero-copy out of pooled answer buffers: keep a copy.
	owner = strings.Clone(owner)
	o.l1.set(o.l1Key(id), ownerEntry{owner: owner, expires: o.now().Add(o.ttl).UnixNano()})
	if o.shared != nil {
		o.shared.set(ctx, o.shared.key("own", o.name(id)), []byte(owner), o.ttl)
	}
}

// Forget drops id from both levels (the key was deleted).
func (o *OwnerCache) Forget(ctx context.Context, id string) {
	o.l1.del(o.l1Key(id))
	if o.shared != nil {
		o.shared.del(ctx, o.shared.key("own", o.name(id)))
	}
}
