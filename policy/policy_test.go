package policy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func compile(t *testing.T, c Config) *Rules {
	t.Helper()
	c.Defaults()
	r, err := Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDecide(t *testing.T) {
	def := compile(t, Config{})
	custom := compile(t, Config{Rules: map[string][]string{"delete": {"role:key_janitor"}, "get": {"admin", "owner", "role:auditor"}}})
	admin := &Identity{UserID: "a", Roles: []string{"secu_admin"}}
	te := &Identity{UserID: "t", Roles: []string{"te_admin"}}
	alice := &Identity{UserID: "alice", Roles: []string{"member"}}
	janitor := &Identity{UserID: "j", Roles: []string{"key_janitor"}}
	auditor := &Identity{UserID: "au", Roles: []string{"auditor"}}
	tests := []struct {
		name   string
		rules  *Rules
		action string
		who    *Identity
		owner  string
		allow  bool
		rule   string
	}{
		{"admin any key", def, "update", admin, "bob", true, "admin"},
		{"te_admin is not a key admin", def, "update", te, "bob", false, ""},
		{"owner own key", def, "delete", alice, "alice", true, "owner"},
		{"owner other key", def, "delete", alice, "bob", false, ""},
		{"unknown owner denies", def, "get", alice, "", false, ""},
		{"role rule", custom, "delete", janitor, "bob", true, "role:key_janitor"},
		{"owner not listed for delete", custom, "delete", alice, "alice", false, ""},
		{"admin not listed for delete", custom, "delete", admin, "alice", false, ""},
		{"auditor reads", custom, "get", auditor, "bob", true, "role:auditor"},
		{"unknown action denies", def, "rotate", admin, "a", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.rules.Decide(tc.action, tc.who, tc.owner)
			if d.Allowed != tc.allow || d.Rule != tc.rule {
				t.Fatalf("got %+v", d)
			}
		})
	}
	if def.NeedsOwner("update", admin) || !def.NeedsOwner("update", alice) || custom.NeedsOwner("delete", alice) {
		t.Fatal("NeedsOwner is wrong")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, bad := range []Config{
		{Rules: map[string][]string{"update": {"owners"}}},
		{Rules: map[string][]string{"rotate": {"admin"}}},
		{Rules: map[string][]string{"get": {"role:"}}},
		{AdminRoles: []string{" "}},
	} {
		bad.Defaults()
		if err := bad.Validate(); err == nil || !strings.HasPrefix(err.Error(), "policy.") {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
}

// identityServer answers token validations like Keystone.
func identityServer(t *testing.T, status int, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v3/auth/tokens" || r.Header.Get("X-Subject-Token") != "tok" || r.Header.Get("X-Auth-Token") == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestIdentityClient(t *testing.T) {
	good := `{"token":{"expires_at":"2099-01-01T00:00:00.000000Z","user":{"id":"u1","name":"n","domain":{"id":"d","name":"dn"}},"project":{"id":"p1"},"roles":[{"id":"1","name":"secu_admin"},{"id":"2","name":"reader"}]}}`
	expired := strings.Replace(good, "2099", "2001", 1)
	tests := []struct {
		name   string
		status int
		body   string
		err    error
	}{
		{"valid", 200, good, nil},
		{"expired", 200, expired, ErrInvalidToken},
		{"401", 401, `{}`, ErrInvalidToken},
		{"404", 404, `{}`, ErrInvalidToken},
		{"500", 500, `{}`, ErrUnavailable},
		{"403", 403, `{}`, ErrUnavailable},
		{"garbage", 200, `<html>`, ErrUnavailable},
		{"no user", 200, `{"token":{"expires_at":"2099-01-01T00:00:00Z"}}`, ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := identityServer(t, tc.status, tc.body)
			c := NewIdentityClient(IdentityConfig{URL: srv.URL, Timeout: time.Second}, "", nil)
			id, err := c.Validate(context.Background(), "tok")
			if !errors.Is(err, tc.err) && !(err == nil && tc.err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if tc.err == nil && (id.UserID != "u1" || id.ProjectID != "p1" || !id.HasRole("secu_admin") || id.DomainName != "dn") {
				t.Fatalf("identity %+v", id)
			}
			if err != nil && strings.Contains(err.Error(), "tok") && tc.err != ErrInvalidToken {
				t.Fatalf("error mentions the token: %v", err)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		c := NewIdentityClient(IdentityConfig{URL: "http://127.0.0.1:1", Timeout: time.Second}, "", nil)
		if _, err := c.Validate(context.Background(), "tok"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("malformed token never sent", func(t *testing.T) {
		srv := identityServer(t, 200, good)
		c := NewIdentityClient(IdentityConfig{URL: srv.URL, Timeout: time.Second}, "", nil)
		if _, err := c.Validate(context.Background(), "bad token"); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("err %v", err)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	f.Add([]byte(`{"token":{"expires_at":"2099-01-01T00:00:00.000000Z","user":{"id":"u1"},"roles":[{"name":"a"}]}}`))
	f.Add([]byte(`{"token":{"roles":"x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseToken(b)
		if err == nil && (id.UserID == "" || id.ExpiresAt.IsZero()) {
			t.Fatalf("accepted an identity without user or expiry: %+v", id)
		}
	})
}
