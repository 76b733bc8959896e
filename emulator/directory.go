// Package emulator holds in-memory reference servers for both key dialects and
// a Keystone-compatible identity service. They behave as the clouds do (quotas,
// owners versus administrators, secrets only where the dialect returns them, each
// dialect's error shape) and are what tests and the demo run against over HTTP.
package emulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"go.yaml.in/yaml/v3"
)

// User is one account of the reference cloud.
type User struct {
	ID         string   `yaml:"id"`
	Name       string   `yaml:"name"`
	DomainID   string   `yaml:"domain_id"`
	DomainName string   `yaml:"domain_name"`
	Password   string   `yaml:"password"`
	ProjectID  string   `yaml:"project_id"`
	Roles      []string `yaml:"roles"`
	// Tokens are fixed tokens for this user that never expire (demo and tests).
	Tokens []string `yaml:"tokens"`
}

// AdminRoles are the roles the reference clouds treat as Security Administrator.
var AdminRoles = []string{"secu_admin", "admin"}

// IsAdmin reports whether u manages other users' keys.
func (u *User) IsAdmin() bool {
	for _, r := range AdminRoles {
		if slices.Contains(u.Roles, r) {
			return true
		}
	}
	return false
}

type tokenEntry struct {
	userID  string
	expires time.Time
}

// Directory is the shared user and token store. Servers in one process share one;
// servers in separate processes load the same users file, and may fall back to a
// remote identity service for tokens they did not issue.
type Directory struct {
	mu     sync.RWMutex
	users  map[string]*User
	tokens map[string]tokenEntry
	// TokenTTL is the life of tokens issued by password login.
	TokenTTL time.Duration
	// RemoteIdentity, when set, validates tokens this directory does not know.
	RemoteIdentity string
	client         *http.Client
}

// DemoUsers are the built-in accounts of the demo and of a server started without
// --users: an administrator, two plain users, a te_admin (not a key admin), and a
// service account for upstream.auth.mode=keystone.
func DemoUsers() []User {
	return []User{
		{ID: "u-admin", Name: "admin", DomainID: "d-demo", DomainName: "demo", Password: "admin-pass", ProjectID: "p-demo", Roles: []string{"secu_admin"}, Tokens: []string{"demo-admin-token"}},
		{ID: "u-alice", Name: "alice", DomainID: "d-demo", DomainName: "demo", Password: "alice-pass", ProjectID: "p-alice", Roles: []string{"member"}, Tokens: []string{"demo-alice-token"}},
		{ID: "u-bob", Name: "bob", DomainID: "d-demo", DomainName: "demo", Password: "bob-pass", ProjectID: "p-bob", Roles: []string{"member"}, Tokens: []string{"demo-bob-token"}},
		{ID: "u-te", Name: "te", DomainID: "d-demo", DomainName: "demo", Password: "te-pass", ProjectID: "p-demo", Roles: []string{"te_admin"}, Tokens: []string{"demo-te-token"}},
		{ID: "u-svc", Name: "credbridge", DomainID: "d-demo", DomainName: "demo", Password: "svc-pass", ProjectID: "p-demo", Roles: []string{"admin"}, Tokens: []string{"demo-service-token"}},
	}
}

// NewDirectory builds a directory from users.
func NewDirectory(users []User) *Directory {
	d := &Directory{
		users:    map[string]*User{},
		tokens:   map[string]tokenEntry{},
		TokenTTL: time.Hour,
		client:   &http.Client{Timeout: 3 * time.Second},
	}
	forever := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range users {
		u := users[i]
		d.users[u.ID] = &u
		for _, t := range u.Tokens {
			d.tokens[t] = tokenEntry{userID: u.ID, expires: forever}
		}
	}
	return d
}

// LoadUsers reads a users file: `users: [{id, name, domain_id, domain_name,
// password, project_id, roles: [...], tokens: [...]}]`.
func LoadUsers(path string) ([]User, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		Users []User `yaml:"users"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	for i, u := range f.Users {
		if u.ID == "" || u.Name == "" {
			return nil, fmt.Errorf("%s: users[%d]: id and name are required", path, i)
		}
	}
	return f.Users, nil
}

// User returns the user with id.
func (d *Directory) User(id string) (*User, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.users[id]
	return u, ok
}

// Users returns every user, sorted by id.
func (d *Directory) Users() []*User {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]*User, 0, len(d.users))
	for _, u := range d.users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b *User) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Project returns a project as Keystone shows it: the reference cloud knows a
// project through its members (a project's name is its id).
func (d *Directory) Project(id string) (map[string]any, bool) {
	for _, u := range d.Users() { // by id, so a project's domain is its first member's
		if u.ProjectID == id {
			return projectBody(u), true
		}
	}
	return nil, false
}

// projectBody is u's project as Keystone shows it.
func projectBody(u *User) map[string]any {
	return map[string]any{"id": u.ProjectID, "name": u.ProjectID, "domain_id": u.DomainID, "enabled": true,
		"links": map[string]any{"self": "/v3/projects/" + u.ProjectID}}
}

// Login checks a password and issues a token.
func (d *Directory) Login(name, domain, userID, password string) (string, *User, time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if (u.ID == userID || (u.Name == name && (domain == "" || domain == u.DomainName || domain == u.DomainID))) && u.Password != "" && u.Password == password {
			var b [16]byte
			_, _ = rand.Read(b[:])
			tok := "tok-" + hex.EncodeToString(b[:])
			exp := time.Now().Add(d.TokenTTL).UTC()
			d.tokens[tok] = tokenEntry{userID: u.ID, expires: exp}
			return tok, u, exp, true
		}
	}
	return "", nil, time.Time{}, false
}

// Issue makes a token for userID with the given life (tests use short ones).
func (d *Directory) Issue(userID string, ttl time.Duration) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := "tok-" + hex.EncodeToString(b[:])
	d.mu.Lock()
	d.tokens[tok] = tokenEntry{userID: userID, expires: time.Now().Add(ttl).UTC()}
	d.mu.Unlock()
	return tok
}

// Revoke forgets a token.
func (d *Directory) Revoke(tok string) {
	d.mu.Lock()
	delete(d.tokens, tok)
	d.mu.Unlock()
}

// Lookup resolves a token to its user and expiry.
func (d *Directory) Lookup(ctx context.Context, tok string) (*User, time.Time, bool) {
	d.mu.RLock()
	e, ok := d.tokens[tok]
	var u *User
	if ok {
		u = d.users[e.userID]
	}
	d.mu.RUnlock()
	if ok && u != nil && time.Now().Before(e.expires) {
		return u, e.expires, true
	}
	if !ok && d.RemoteIdentity != "" {
		return d.remoteLookup(ctx, tok)
	}
	return nil, time.Time{}, false
}

func (d *Directory) remoteLookup(ctx context.Context, tok string) (*User, time.Time, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(d.RemoteIdentity, "/")+"/v3/auth/tokens", nil)
	if err != nil {
		return nil, time.Time{}, false
	}
	req.Header.Set("X-Auth-Token", tok)
	req.Header.Set("X-Subject-Token", tok)
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, time.Time{}, false
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, 1<<20)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, time.Time{}, false
	}
	t := gjson.GetBytes(body, "token")
	exp, err := time.Parse(time.RFC3339Nano, t.Get("expires_at").String())
	if err != nil || !time.Now().Before(exp) {
		return nil, time.Time{}, false
	}
	u := &User{ID: t.Get("user.id").String(), Name: t.Get("user.name").String(), ProjectID: t.Get("project.id").String()}
	for _, r := range t.Get("roles.#.name").Array() {
		u.Roles = append(u.Roles, r.String())
	}
	return u, exp, u.ID != ""
}
