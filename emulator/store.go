package emulator

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// MaxKeysPerUser is both clouds' permanent key quota.
const MaxKeysPerUser = 2

// Key is one stored access key.
type Key struct {
	AK, SK       string
	UserID       string
	ProjectID    string
	Active       bool
	StatusSet    bool // Keystone stores blobs verbatim: a blob without status stays without
	Description  string
	HasDesc      bool
	SubjectIBMID string
	Created      time.Time
	LastUse      time.Time
}

var (
	errQuota  = errors.New("quota")
	errExists = errors.New("exists")
)

// Store is an in-memory key table with the per-user quota.
type Store struct {
	mu   sync.Mutex
	keys map[string]*Key
}

func newStore() *Store { return &Store{keys: map[string]*Key{}} }

func (s *Store) create(k Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.AK]; ok {
		return errExists
	}
	n := 0
	for _, o := range s.keys {
		if o.UserID == k.UserID {
			n++
		}
	}
	if n >= MaxKeysPerUser {
		return errQuota
	}
	s.keys[k.AK] = &k
	return nil
}

func (s *Store) get(ak string) (Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[ak]
	if !ok {
		return Key{}, false
	}
	return *k, true
}

// update applies fn to a copy and stores it unless fn returns an error.
func (s *Store) update(ak string, fn func(*Key) error) (Key, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[ak]
	if !ok {
		return Key{}, false, nil
	}
	c := *k
	if err := fn(&c); err != nil {
		return Key{}, true, err
	}
	*k = c
	return c, true, nil
}

func (s *Store) delete(ak string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[ak]
	delete(s.keys, ak)
	return ok
}

// Keys is a snapshot of every key, oldest first, matching filter (nil: all).
func (s *Store) Keys(filter func(Key) bool) []Key {
	s.mu.Lock()
	out := make([]Key, 0, len(s.keys))
	for _, k := range s.keys {
		if filter == nil || filter(*k) {
			out = append(out, *k)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Key) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.AK, b.AK)
	})
	return out
}

// Get returns one key (tests read the backend's state through it).
func (s *Store) Get(ak string) (Key, bool) { return s.get(ak) }

// Put stores a key as is, quota aside (tests seed state through it).
func (s *Store) Put(k Key) {
	s.mu.Lock()
	s.keys[k.AK] = &k
	s.mu.Unlock()
}
