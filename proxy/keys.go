package proxy

import (
	"context"
	"strings"
	"sync"

	"github.com/credbridge/credbridge/translate"
)

// OwnerStore remembers key owners by upstream id (policy.OwnerCache).
type OwnerStore interface {
	Get(ctx context.Context, id string) (string, bool)
	Set(ctx context.Context, id, owner string)
	Forget(ctx context.Context, id string)
}

// maxCacheEntries bounds the seen-keys map.
const maxCacheEntries = 100_000

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
	s.m[h] = strings.Clone(ak) // ak may point into a pooled answer buffer
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
