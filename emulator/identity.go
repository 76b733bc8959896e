package emulator

import (
	"net/http"
	"time"
)

// Identity is a Keystone-compatible token service: password login, token
// validation, revocation.
type Identity struct {
	Counter
	Dir *Directory
}

// NewIdentity serves dir's users.
func NewIdentity(dir *Directory) *Identity { return &Identity{Dir: dir} }

// Handler is the HTTP surface.
func (s *Identity) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v3/auth/tokens", s.validate)
	mux.HandleFunc("HEAD /v3/auth/tokens", s.validate)
	mux.HandleFunc("POST /v3/auth/tokens", s.login)
	mux.HandleFunc("DELETE /v3/auth/tokens", s.revoke)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		keystoneError(w, http.StatusNotFound, "The resource could not be found.")
	})
	return s.wrap(mux)
}

func (s *Identity) caller(w http.ResponseWriter, r *http.Request) bool {
	if _, _, ok := s.Dir.Lookup(r.Context(), r.Header.Get("X-Auth-Token")); !ok {
		keystoneError(w, http.StatusUnauthorized, "The request you have made requires authentication.")
		return false
	}
	return true
}

func (s *Identity) validate(w http.ResponseWriter, r *http.Request) {
	if !s.caller(w, r) {
		return
	}
	subject := r.Header.Get("X-Subject-Token")
	u, exp, ok := s.Dir.Lookup(r.Context(), subject)
	if !ok {
		keystoneError(w, http.StatusNotFound, "Failed to validate token")
		return
	}
	w.Header().Set("X-Subject-Token", subject)
	writeJSON(w, http.StatusOK, tokenBody(u, exp))
}

func (s *Identity) revoke(w http.ResponseWriter, r *http.Request) {
	if !s.caller(w, r) {
		return
	}
	s.Dir.Revoke(r.Header.Get("X-Subject-Token"))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Identity) login(w http.ResponseWriter, r *http.Request) {
	m, status, msg := decodeObject(r)
	if status != 0 {
		keystoneError(w, status, msg)
		return
	}
	user := dig(m, "auth", "identity", "password", "user")
	name, _ := user["name"].(string)
	id, _ := user["id"].(string)
	pw, _ := user["password"].(string)
	domain, _ := dig(user, "domain")["name"].(string)
	if domain == "" {
		domain, _ = dig(user, "domain")["id"].(string)
	}
	tok, u, exp, ok := s.Dir.Login(name, domain, id, pw)
	if !ok {
		keystoneError(w, http.StatusUnauthorized, "The request you have made requires authentication.")
		return
	}
	w.Header().Set("X-Subject-Token", tok)
	writeJSON(w, http.StatusCreated, tokenBody(u, exp))
}

func dig(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, _ := m[p].(map[string]any)
		if next == nil {
			return map[string]any{}
		}
		m = next
	}
	return m
}

func tokenBody(u *User, exp time.Time) map[string]any {
	roles := make([]map[string]any, 0, len(u.Roles))
	for i, r := range u.Roles {
		roles = append(roles, map[string]any{"id": "r" + string(rune('0'+i%10)), "name": r})
	}
	domain := map[string]any{"id": u.DomainID, "name": u.DomainName}
	return map[string]any{"token": map[string]any{
		"methods":    []string{"password"},
		"expires_at": exp.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"issued_at":  time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"),
		"user":       map[string]any{"id": u.ID, "name": u.Name, "domain": domain},
		"project":    map[string]any{"id": u.ProjectID, "name": u.ProjectID, "domain": domain},
		"roles":      roles,
	}}
}
