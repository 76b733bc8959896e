package migrate

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"time"

	"github.com/credbridge/credbridge/translate"
)

// Entry is one journaled write, in the secondary's terms: the owner already
// mapped, the project chosen, the secret sealed. It never holds a token.
type Entry struct {
	// ID is the journal's name for the entry (bbolt sequence, stream id).
	ID string `json:"-"`
	Op string `json:"op"`
	// Access is the key; KeyID orders entries of one key (sha256(AK), or the
	// Keystone id a delete came with when the AK was not known).
	Access  string `json:"ak,omitempty"`
	KeyID   string `json:"kid"`
	Owner   string `json:"owner,omitempty"`
	Project string `json:"project,omitempty"`
	Status  string `json:"status,omitempty"`
	Desc    string `json:"desc,omitempty"`
	HasDesc bool   `json:"has_desc,omitempty"`
	// Sealed is the secret, AES-GCM sealed with the journal key, the AK as
	// associated data (an entry's secret cannot be moved onto another key).
	Sealed []byte `json:"sk,omitempty"`
	// At is when the primary confirmed the write (unix ms).
	At int64 `json:"at"`
	// Session names the process that journaled it; a passthrough secondary's
	// token exists only in that process's memory.
	Session string `json:"session,omitempty"`
	// Trace is the request's W3C traceparent (ids only), for the apply's span link.
	Trace string `json:"trace,omitempty"`
	// Target names the secondary the entry is for (its side and URL): after a
	// reload swaps the sides, entries journaled before still go where they
	// were meant to. Empty (entries of older versions): the current secondary.
	Target string `json:"target,omitempty"`
}

// Time is when the write happened on the primary.
func (e Entry) Time() time.Time { return time.UnixMilli(e.At) }

// Journal is where mirror writes wait for the secondary. Append is durable when
// it returns. Next gives entries this process may work on, oldest first; an
// entry stays pending (and may be given again) until Done.
type Journal interface {
	Append(ctx context.Context, e Entry) (string, error)
	Next(ctx context.Context, max int, wait time.Duration) ([]Entry, error)
	// IsHead reports whether e is the oldest pending entry of its key
	// (entries of one key apply in order, whichever replica holds them).
	IsHead(ctx context.Context, e Entry) (bool, error)
	// Deleted reports whether a later entry of e's key deletes it: a create
	// that cannot apply (the owner's quota is held by keys that came later on
	// the primary but applied first) is then moot, not a deadlock.
	Deleted(ctx context.Context, e Entry) (bool, error)
	Done(ctx context.Context, e Entry) error
	// Stats: how many entries are pending, and the oldest one's time (zero: none).
	Stats(ctx context.Context) (int64, time.Time, error)
	Close() error
}

// Sealer encrypts secrets for the journal and fingerprints them for comparisons.
type Sealer struct {
	aead cipher.AEAD
	FP   Fingerprinter
}

// NewSealer derives the AES-256-GCM key from the journal key (HMAC-SHA256 with
// a fixed label), so the same bytes never serve as both cipher and HMAC key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) < MinJournalKey {
		return nil, errors.New("journal key shorter than 32 bytes")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("credbridge journal secret seal v1"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead, FP: NewFingerprinter(key)}, nil
}

// Seal encrypts secret bound to ak: a fresh nonce, then the ciphertext.
func (s *Sealer) Seal(ak, secret string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(secret)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return s.aead.Seal(nonce, nonce, []byte(secret), []byte(ak))
}

// Open decrypts what Seal made for ak.
func (s *Sealer) Open(ak string, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed secret too short")
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(ak))
	if err != nil {
		return "", errors.New("sealed secret does not open with this journal key")
	}
	return string(pt), nil
}

func encodeEntry(e Entry) ([]byte, error) { return json.Marshal(e) }

func decodeEntry(id string, b []byte) (Entry, error) {
	var e Entry
	err := json.Unmarshal(b, &e)
	e.ID = id
	return e, err
}

// KeyID orders the entries of one key: sha256(AK) in hex, or a Keystone id
// when only that is known.
func KeyID(ak, keystoneID string) string {
	if ak != "" {
		return translate.HashID(ak)
	}
	return keystoneID
}
