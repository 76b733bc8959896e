package emulator

import (
	"net/http"
	"net/url"
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
	mux.HandleFunc("GET /v3/users/{id}", s.readOne("user", func(c *User, id string) bool { return c.ID == id }, s.user))
	mux.HandleFunc("GET /v3/users", s.listAll("user", s.users))
	mux.HandleFunc("GET /v3/projects/{id}", s.readOne("project", func(c *User, id string) bool { return c.ProjectID == id }, s.project))
	mux.HandleFunc("GET /v3/projects", s.listAll("project", s.projects))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		keystoneError(w, http.StatusNotFound, "The resource could not be found.")
	})
	return s.wrap(mux)
}

func (s *Identity) caller(w http.ResponseWriter, r *http.Request) bool {
	return s.who(w, r) != nil
}

// who is the caller, or nil once a 401 is written.
func (s *Identity) who(w http.ResponseWriter, r *http.Request) *User {
	u, _, ok := s.Dir.Lookup(r.Context(), r.Header.Get("X-Auth-Token"))
	if !ok {
		keystoneError(w, http.StatusUnauthorized, "The request you have made requires authentication.")
		return nil
	}
	return u
}

// The look-ups below follow Keystone's default policy: a user reads their own
// user and project, an admin reads and lists everything, anyone else is 403.

// readOne answers GET /v3/{kind}s/{id}: mine says whether id is the caller's
// own; find reads it.
func (s *Identity) readOne(kind string, mine func(c *User, id string) bool, find func(id string) (any, bool)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := s.who(w, r)
		if c == nil {
			return
		}
		id := r.PathValue("id")
		if !mine(c, id) && !c.IsAdmin() {
			notAuthorized(w, "identity:get_"+kind)
			return
		}
		v, ok := find(id)
		if !ok {
			keystoneError(w, http.StatusNotFound, "Could not find "+kind+": "+id+".")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{kind: v})
	}
}

// listAll answers GET /v3/{kind}s for administrators: list returns what the
// query selects.
func (s *Identity) listAll(kind string, list func(q url.Values) []any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := s.who(w, r)
		if c == nil {
			return
		}
		if !c.IsAdmin() {
			notAuthorized(w, "identity:list_"+kind+"s")
			return
		}
		out := list(r.URL.Query())
		if out == nil {
			out = []any{}
		}
		writeJSON(w, http.StatusOK, map[string]any{kind + "s": out, "links": map[string]any{"self": r.URL.Path, "next": nil, "previous": nil}})
	}
}

func (s *Identity) user(id string) (any, bool) {
	u, ok := s.Dir.User(id)
	if !ok {
		return nil, false
	}
	return userBody(u), true
}

func (s *Identity) project(id string) (any, bool) { return s.Dir.Project(id) }

func (s *Identity) users(q url.Values) []any {
	var out []any
	for _, u := range s.Dir.Users() {
		if (q.Get("name") == "" || u.Name == q.Get("name")) && (q.Get("domain_id") == "" || u.DomainID == q.Get("domain_id")) {
			out = append(out, userBody(u))
		}
	}
	return out
}

func (s *Identity) projects(q url.Values) []any {
	var out []any
	seen := map[string]bool{}
	for _, u := range s.Dir.Users() {
		if u.ProjectID == "" || seen[u.ProjectID] || (q.Get("name") != "" && u.ProjectID != q.Get("name")) {
			continue
		}
		seen[u.ProjectID] = true
		out = append(out, projectBody(u))
	}
	return out
}

// notAuthorized is Keystone's 403 for a policy rule the caller does not pass.
func notAuthorized(w http.ResponseWriter, action string) {
	keystoneError(w, http.StatusForbidden, "You are not authorized to perform the requested action: "+action+".")
}

func userBody(u *User) map[string]any {
	return map[string]any{"id": u.ID, "name": u.Name, "domain_id": u.DomainID, "enabled": true,
		"default_project_id": u.ProjectID, "links": map[string]any{"self": "/v3/users/" + u.ID}}
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
