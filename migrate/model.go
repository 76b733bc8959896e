package migrate

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/credbridge/credbridge/translate"
	"go.yaml.in/yaml/v3"
)

// Divergence kinds (migration.md "Comparing").
const (
	KindMissingOnSecondary = "missing_on_secondary"
	KindMissingOnPrimary   = "missing_on_primary"
	KindOwner              = "owner"
	KindStatus             = "status"
	KindDescription        = "description"
	KindSecret             = "secret"
	KindUnmappedUser       = "unmapped_user"
	KindNeedsRekey         = "needs_rekey"
	KindSecondaryError     = "secondary_error"
)

// Kinds lists every divergence kind, for metrics and tests.
var Kinds = []string{KindMissingOnSecondary, KindMissingOnPrimary, KindOwner, KindStatus,
	KindDescription, KindSecret, KindUnmappedUser, KindNeedsRekey, KindSecondaryError}

// Divergence is one difference found. Primary and Secondary hold field values
// (a status, a description, an owner, or a secret's fingerprint) — never a secret.
type Divergence struct {
	Kind      string `json:"kind"`
	Access    string `json:"access,omitempty"`
	Owner     string `json:"owner,omitempty"`
	Primary   string `json:"primary,omitempty"`
	Secondary string `json:"secondary,omitempty"`
	Op        string `json:"op,omitempty"`
	At        string `json:"at,omitempty"`
}

// Key is the neutral key model both sides' answers are read into: owners as the
// secondary names them, the secret only as a keyed fingerprint and only when
// the side disclosed it.
type Key struct {
	Access, Owner, Status, Description string
	// FP is the secret's fingerprint ("" when the side did not disclose it).
	FP string
}

// Fingerprinter keys secret fingerprints: HMAC-SHA256 with the journal key, 16 hex.
type Fingerprinter struct{ key []byte }

// NewFingerprinter keys fingerprints with key.
func NewFingerprinter(key []byte) Fingerprinter { return Fingerprinter{key: key} }

// Of is the fingerprint of secret ("" for none).
func (f Fingerprinter) Of(secret string) string {
	if secret == "" {
		return ""
	}
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// Neutral reads c into the model; owner is c's owner already mapped.
func (f Fingerprinter) Neutral(c translate.Cred, owner string) Key {
	st := c.Status
	if st == translate.StatusUnset {
		st = translate.StatusActive // both dialects: no status means active
	}
	return Key{Access: c.Access, Owner: owner, Status: st.Oscred(), Description: c.Description, FP: f.Of(c.Secret)}
}

// Compare returns the divergences between the primary's keys and the
// secondary's for the same question. Only fields both sides carry are compared;
// ids, blob form, project_id, times and links never are.
func Compare(primary, secondary []Key) []Divergence {
	sec := make(map[string]Key, len(secondary))
	for _, k := range secondary {
		sec[k.Access] = k
	}
	var out []Divergence
	seen := make(map[string]bool, len(primary))
	for _, p := range primary {
		seen[p.Access] = true
		s, ok := sec[p.Access]
		if !ok {
			out = append(out, Divergence{Kind: KindMissingOnSecondary, Access: p.Access, Owner: p.Owner})
			continue
		}
		out = append(out, diffKey(p, s)...)
	}
	for _, s := range secondary {
		if !seen[s.Access] {
			out = append(out, Divergence{Kind: KindMissingOnPrimary, Access: s.Access, Owner: s.Owner})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Access < out[j].Access })
	return out
}

func diffKey(p, s Key) []Divergence {
	var out []Divergence
	d := func(kind, pv, sv string) {
		out = append(out, Divergence{Kind: kind, Access: p.Access, Owner: p.Owner, Primary: pv, Secondary: sv})
	}
	if p.Owner != s.Owner {
		d(KindOwner, p.Owner, s.Owner)
	}
	if p.Status != s.Status {
		d(KindStatus, p.Status, s.Status)
	}
	if p.Description != s.Description {
		d(KindDescription, p.Description, s.Description)
	}
	if p.FP != "" && s.FP != "" && p.FP != s.FP {
		d(KindSecret, p.FP, s.FP)
	}
	return out
}

// MapEntry is one line of user_map_file.
type MapEntry struct {
	Primary   string `yaml:"primary"`
	Secondary string `yaml:"secondary"`
	Project   string `yaml:"project"`
}

// UserMap maps owners between the sides. The zero value (no file) maps every
// user to itself.
type UserMap struct {
	set       bool
	toSec     map[string]MapEntry
	toPrimary map[string]string
}

// LoadUserMap reads a user_map_file.
func LoadUserMap(path string) (*UserMap, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []MapEntry
	if err := yaml.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	m := &UserMap{set: true, toSec: map[string]MapEntry{}, toPrimary: map[string]string{}}
	var errs []error
	for i, e := range list {
		if e.Primary == "" || e.Secondary == "" {
			errs = append(errs, fmt.Errorf("%s: entry %d needs primary and secondary", path, i+1))
			continue
		}
		if _, dup := m.toSec[e.Primary]; dup {
			errs = append(errs, fmt.Errorf("%s: primary user %q listed twice", path, e.Primary))
		}
		if _, dup := m.toPrimary[e.Secondary]; dup {
			errs = append(errs, fmt.Errorf("%s: secondary user %q listed twice", path, e.Secondary))
		}
		m.toSec[e.Primary] = e
		m.toPrimary[e.Secondary] = e.Primary
	}
	return m, errors.Join(errs...)
}

// Secondary maps a primary user; ok is false for a user a set map does not list.
func (m *UserMap) Secondary(primary string) (MapEntry, bool) {
	if m == nil || !m.set {
		return MapEntry{Primary: primary, Secondary: primary}, true
	}
	e, ok := m.toSec[primary]
	return e, ok
}

// Primary maps a secondary user back ("" when a set map does not list it).
func (m *UserMap) Primary(secondary string) string {
	if m == nil || !m.set {
		return secondary
	}
	return m.toPrimary[secondary]
}

// Users lists the primary users of a set map (nil without one).
func (m *UserMap) Users() []string {
	if m == nil || !m.set {
		return nil
	}
	out := make([]string, 0, len(m.toSec))
	for u := range m.toSec {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}
