package proxy

import (
	"sync"
	"time"

	"github.com/credbridge/credbridge/translate"
)

// ownerCache remembers which user owns a key (by upstream id), so repeated
// updates by a key's owner cost no extra upstream GET. A key never changes owner,
// so an entry is only ever wrong after the key was deleted behind the bridge's
// back; the TTL bounds that, and deletes through the bridge forget at once.
type ownerCache struct {
	mu  sync.RWMutex
	m   map[string]ownerEntry
	ttl time.Duration
	now func() time.Time
}

type ownerEntry struct {
	owner   string
	expires time.Time
}

const maxCacheEntries = 100_000

func newOwnerCache(ttl time.Duration, now func() time.Time) *ownerCache {
	return &ownerCache{m: map[string]ownerEntry{}, ttl: ttl, now: now}
}

func (o *ownerCache) get(id string) (string, bool) {
	o.mu.RLock()
	e, ok := o.m[id]
	o.mu.RUnlock()
	if !ok || !o.now().Before(e.expires) {
		return "", false
	}
	return e.owner, true
}

func (o *ownerCache) set(id, owner string) {
	if id == "" || owner == "" {
		return
	}
	o.mu.Lock()
	if len(o.m) >= maxCacheEntries {
		evictSome(o.m)
	}
	o.m[id] = ownerEntry{owner: owner, expires: o.now().Add(o.ttl)}
	o.mu.Unlock()
}

func (o *ownerCache) forget(id string) {
	o.mu.Lock()
	delete(o.m, id)
	o.mu.Unlock()
}

// evictSome drops an eighth of a full map. Map order is random, so this is a
// random eviction: cheap, and fair enough for caches whose misses are correct.
func evictSome[V any](m map[string]V) {
	n := len(m) / 8
	for k := range m {
		if n--; n < 0 {
			return
		}
		delete(m, k)
	}
}

// seenKeys maps Keystone ids (sha256 of an AK) to the AKs the bridge has seen in
// answers, so a Keystone client can name a key by hash to an upstream that names
// it by AK.
type seenKeys struct {
	mu sync.RWMutex
	m  map[string]string
}

func newSeenKeys() *seenKeys { return &seenKeys{m: map[string]string{}} }

func (s *seenKeys) add(ak string) {
	if ak == "" {
		return
	}
	h := translate.HashID(ak)
	s.mu.RLock()
	_, ok := s.m[h]
	s.mu.RUnlock()
	if ok {
		return
	}
	s.mu.Lock()
	if len(s.m) >= maxCacheEntries {
		evictSome(s.m)
	}
	s.m[h] = ak
	s.mu.Unlock()
}

func (s *seenKeys) lookup(hash string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[hash]
}

func (s *seenKeys) forget(ak string) {
	s.mu.Lock()
	delete(s.m, translate.HashID(ak))
	s.mu.Unlock()
}
