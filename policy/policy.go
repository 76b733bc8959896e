// Package policy decides whether a caller may perform an operation on access keys:
// it turns a token into an identity (through the identity service) and checks the
// configured rules (admin | owner | role:NAME). It knows nothing of dialects.
package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Identity is what a validated token says about its holder.
type Identity struct {
	UserID     string
	UserName   string
	DomainID   string
	DomainName string
	ProjectID  string
	Roles      []string
	ExpiresAt  time.Time
}

// HasRole reports whether the identity holds role name.
func (id *Identity) HasRole(name string) bool { return slices.Contains(id.Roles, name) }

// Validator turns a token into an identity. Implementations: the identity service
// client, and the cache in front of it.
type Validator interface {
	Validate(ctx context.Context, token string) (*Identity, error)
}

// Errors a Validator returns. Callers map them: missing/invalid → 401,
// unavailable → 503 (fail closed).
var (
	ErrNoToken      = errors.New("missing X-Auth-Token")
	ErrInvalidToken = errors.New("the token is invalid or expired")
	ErrUnavailable  = errors.New("identity service unavailable")
)

// Config holds the rules. Zero values are not usable: run Defaults then Validate.
type Config struct {
	// AdminRoles hold every key right. Default [secu_admin, admin]. Risk: adding a
	// broad role (te_admin, member) hands every user's keys to its holders.
	AdminRoles []string `yaml:"admin_roles"`
	// Rules per operation (create, list, get, update, delete); any one entry
	// allows: "admin", "owner" or "role:NAME". Default [admin, owner] for each. An
	// operation with no entry is denied to all.
	Rules map[string][]string `yaml:"rules"`
}

// Actions are the operations rules are written for.
var Actions = []string{"create", "list", "get", "update", "delete"}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.AdminRoles == nil {
		c.AdminRoles = []string{"secu_admin", "admin"}
	}
	if c.Rules == nil {
		c.Rules = map[string][]string{}
	}
	for _, a := range Actions {
		if _, ok := c.Rules[a]; !ok {
			c.Rules[a] = []string{"admin", "owner"}
		}
	}
}

// Validate refuses rules that cannot be read, so a typo never silently denies or
// allows.
func (c *Config) Validate() error {
	for _, r := range c.AdminRoles {
		if strings.TrimSpace(r) == "" {
			return errors.New("policy.admin_roles: empty role name")
		}
	}
	for op, entries := range c.Rules {
		if !slices.Contains(Actions, op) {
			return fmt.Errorf("policy.rules.%s: unknown operation (want one of %s)", op, strings.Join(Actions, ", "))
		}
		for _, e := range entries {
			if _, err := parseRule(e); err != nil {
				return fmt.Errorf("policy.rules.%s: %w", op, err)
			}
		}
	}
	return nil
}

type ruleKind uint8

const (
	ruleAdmin ruleKind = iota + 1
	ruleOwner
	ruleRole
)

type rule struct {
	kind  ruleKind
	role  string
	label string // the entry as written, reported in decisions without allocating
}

func parseRule(s string) (rule, error) {
	switch {
	case s == "admin":
		return rule{kind: ruleAdmin, label: s}, nil
	case s == "owner":
		return rule{kind: ruleOwner, label: s}, nil
	case strings.HasPrefix(s, "role:") && len(s) > len("role:"):
		return rule{kind: ruleRole, role: s[len("role:"):], label: s}, nil
	}
	return rule{}, fmt.Errorf("rule %q: want admin, owner or role:NAME", s)
}

// Rules is a compiled Config.
type Rules struct {
	adminRoles []string
	byAction   map[string][]rule
}

// Compile builds Rules from a validated config.
func Compile(c Config) (*Rules, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r := &Rules{adminRoles: slices.Clone(c.AdminRoles), byAction: map[string][]rule{}}
	for op, entries := range c.Rules {
		for _, e := range entries {
			ru, _ := parseRule(e)
			r.byAction[op] = append(r.byAction[op], ru)
		}
	}
	return r, nil
}

// IsAdmin reports whether id holds an admin role.
func (r *Rules) IsAdmin(id *Identity) bool {
	for _, a := range r.adminRoles {
		if id.HasRole(a) {
			return true
		}
	}
	return false
}

// NeedsOwner reports whether deciding action for id could depend on the key's
// owner, so callers skip the owner look-up when role rules settle it.
func (r *Rules) NeedsOwner(action string, id *Identity) bool {
	if _, ok := r.allowedWithoutOwner(action, id); ok {
		return false
	}
	return slices.ContainsFunc(r.byAction[action], func(ru rule) bool { return ru.kind == ruleOwner })
}

func (r *Rules) allowedWithoutOwner(action string, id *Identity) (string, bool) {
	for _, ru := range r.byAction[action] {
		switch ru.kind {
		case ruleAdmin:
			if r.IsAdmin(id) {
				return ru.label, true
			}
		case ruleRole:
			if id.HasRole(ru.role) {
				return ru.label, true
			}
		}
	}
	return "", false
}

// Decision is the outcome of a rule check; Rule names the entry that allowed it.
type Decision struct {
	Allowed bool
	Rule    string
}

// Decide checks action for id. owner is the user id owning the target key (the
// key's owner from the upstream, or the target user of a create/list); it is only
// consulted when no role rule already allows.
func (r *Rules) Decide(action string, id *Identity, owner string) Decision {
	if name, ok := r.allowedWithoutOwner(action, id); ok {
		return Decision{Allowed: true, Rule: name}
	}
	for _, ru := range r.byAction[action] {
		if ru.kind == ruleOwner && owner != "" && owner == id.UserID {
			return Decision{Allowed: true, Rule: "owner"}
		}
	}
	return Decision{}
}
