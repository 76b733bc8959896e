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

// Store is an in-memory key table with the per-user quota, indexed by owner
// as a cloud's is: a list of one user's keys (what migrate reads for each of
// thousands of users) does not walk everyone's.
type Store struct {
	mu     sync.Mutex
	keys   map[string]*Key
	byUser map[string]map[string]*Key
}

func newStore() *Store { return &Store{keys: map[string]*Key{}, byUser: map[string]map[string]*Key{}} }

func (s *Store) index(k *Key) {
	m := s.byUser[k.UserID]
	if m == nil {
		m = map[string]*Key{}
		s.byUser[k.UserID] = m
	}
	m[k.AK] = k
}

func (s *Store) unindex(k *Key) {
	if m := s.byUser[k.UserID]; m != nil {
		delete(m, k.AK)
		if len(m) == 0 {
			delete(s.byUser, k.UserID)
		}
	}
}

func (s *Store) create(k Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.AK]; ok {
		return errExists
	}
	if len(s.byUser[k.UserID]) >= MaxKeysPerUser {
		return errQuota
	}
	s.keys[k.AK] = &k
	s.index(&k)
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
	s.unindex(k)
	*k = c
	s.index(k)
	return c, true, nil
}

func (s *Store) delete(ak string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[ak]
	if ok {
		s.unindex(k)
		delete(s.keys, ak)
	}
	return ok
}

// Keys is a snapshot of every key, oldest first, matching filter (nil: all).
func (s *Store) Keys(filter func(Key) bool) []Key { return s.KeysOf("", filter) }

// KeysOf is Keys of one user's keys ("" every user's).
func (s *Store) KeysOf(user string, filter func(Key) bool) []Key {
	s.mu.Lock()
	all := s.keys
	if user != "" {
		all = s.byUser[user]
	}
	out := make([]Key, 0, len(all))
	for _, k := range all {
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
	if old, ok := s.keys[k.AK]; ok {
		s.unindex(old)
	}
	s.keys[k.AK] = &k
	s.index(&k)
	s.mu.Unlock()
}
