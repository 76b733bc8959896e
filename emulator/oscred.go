package emulator

import (
	"crypto/rand"
	"net/http"
	"time"
	"unicode/utf8"
)

// Oscred is the reference Huawei / Open Telekom Cloud IAM OS-CREDENTIAL service.
type Oscred struct {
	Counter
	*Store
	Dir *Directory
}

// NewOscred serves keys for dir's users.
func NewOscred(dir *Directory) *Oscred { return &Oscred{Store: newStore(), Dir: dir} }

const oscredBase = "/v3.0/OS-CREDENTIAL/credentials"

// Handler is the HTTP surface.
func (s *Oscred) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+oscredBase, s.create)
	mux.HandleFunc("GET "+oscredBase, s.list)
	mux.HandleFunc("GET "+oscredBase+"/{ak}", s.get)
	mux.HandleFunc("PUT "+oscredBase+"/{ak}", s.update)
	mux.HandleFunc("DELETE "+oscredBase+"/{ak}", s.delete)
	mux.HandleFunc("POST /v3.0/OS-CREDENTIAL/securitytokens", s.securityToken)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		keystoneError(w, http.StatusNotFound, "The requested resource cannot be found.")
	})
	return s.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" {
			id = newID(16)
		}
		w.Header().Set("X-Request-Id", id)
		mux.ServeHTTP(w, r)
	}))
}

func (s *Oscred) caller(w http.ResponseWriter, r *http.Request) *User {
	u, _, ok := s.Dir.Lookup(r.Context(), r.Header.Get("X-Auth-Token"))
	if !ok {
		keystoneError(w, http.StatusUnauthorized, "The request you have made requires authentication.")
		return nil
	}
	return u
}

// credentialBody reads `{"credential":{...}}`, answering 400 in Huawei's shape.
func (s *Oscred) credentialBody(w http.ResponseWriter, r *http.Request) map[string]any {
	m, status, msg := decodeObject(r)
	if status != 0 {
		if status == http.StatusBadRequest {
			huaweiError(w, status, "IAM.0011", msg)
		} else {
			keystoneError(w, status, msg)
		}
		return nil
	}
	c, ok := m["credential"].(map[string]any)
	if !ok {
		huaweiError(w, http.StatusBadRequest, "IAM.0011", "Request body is invalid.")
		return nil
	}
	if d, present := c["description"]; present {
		ds, ok := d.(string)
		if !ok || utf8.RuneCountInString(ds) > 255 {
			huaweiError(w, http.StatusBadRequest, "IAM.0007", "Invalid description.")
			return nil
		}
	}
	return c
}

func oscredView(k Key, secret, lastUse bool) map[string]any {
	status := "inactive"
	if k.Active {
		status = "active"
	}
	v := map[string]any{
		"access": k.AK, "user_id": k.UserID, "status": status,
		"create_time": timestamp(k.Created), "description": k.Description,
	}
	if secret {
		v["secret"] = k.SK
	}
	if lastUse && !k.LastUse.IsZero() {
		v["last_use_time"] = timestamp(k.LastUse)
	}
	return v
}

func (s *Oscred) create(w http.ResponseWriter, r *http.Request) {
	u := s.caller(w, r)
	if u == nil {
		return
	}
	c := s.credentialBody(w, r)
	if c == nil {
		return
	}
	userID, _ := c["user_id"].(string)
	if userID == "" {
		huaweiError(w, http.StatusBadRequest, "IAM.0007", "user_id is required.")
		return
	}
	if userID != u.ID && !u.IsAdmin() {
		keystoneError(w, http.StatusForbidden, "You are not authorized to perform the requested action.")
		return
	}
	if _, ok := s.Dir.User(userID); !ok {
		keystoneError(w, http.StatusNotFound, "Could not find user: "+userID+".")
		return
	}
	desc, hasDesc := c["description"].(string)
	k := Key{
		AK: randomFrom(upperDigits, 20), SK: randomFrom(alnum, 40), UserID: userID,
		Active: true, StatusSet: true, Description: desc, HasDesc: hasDesc, Created: time.Now(),
	}
	if err := s.Store.create(k); err != nil {
		huaweiError(w, http.StatusBadRequest, "akSkNumExceed", "The number of access keys has reached the limit.")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"credential": oscredView(k, true, false)})
}

func (s *Oscred) list(w http.ResponseWriter, r *http.Request) {
	u := s.caller(w, r)
	if u == nil {
		return
	}
	userID := r.URL.Query().Get("user_id")
	if userID == "" {
		userID = u.ID
	}
	if userID != u.ID && !u.IsAdmin() {
		keystoneError(w, http.StatusForbidden, "You are not authorized to perform the requested action.")
		return
	}
	out := []map[string]any{}
	for _, k := range s.KeysOf(userID, nil) {
		out = append(out, oscredView(k, false, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"credentials": out})
}

// owned finds the key named in the path and checks the caller may touch it.
func (s *Oscred) owned(w http.ResponseWriter, r *http.Request) (*User, Key, bool) {
	u := s.caller(w, r)
	if u == nil {
		return nil, Key{}, false
	}
	k, ok := s.Store.get(r.PathValue("ak"))
	if !ok {
		keystoneError(w, http.StatusNotFound, "Could not find credential.")
		return nil, Key{}, false
	}
	if k.UserID != u.ID && !u.IsAdmin() {
		keystoneError(w, http.StatusForbidden, "You are not authorized to perform the requested action.")
		return nil, Key{}, false
	}
	return u, k, true
}

func (s *Oscred) get(w http.ResponseWriter, r *http.Request) {
	if _, k, ok := s.owned(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"credential": oscredView(k, false, true)})
	}
}

func (s *Oscred) update(w http.ResponseWriter, r *http.Request) {
	_, k, ok := s.owned(w, r)
	if !ok {
		return
	}
	c := s.credentialBody(w, r)
	if c == nil {
		return
	}
	status, hasStatus := c["status"]
	desc, hasDesc := c["description"].(string)
	if hasStatus && status != "active" && status != "inactive" {
		huaweiError(w, http.StatusBadRequest, "IAM.0007", "Invalid status.")
		return
	}
	if !hasStatus && !hasDesc {
		huaweiError(w, http.StatusBadRequest, "IAM.0011", "Request body is invalid.")
		return
	}
	k, _, _ = s.Store.update(k.AK, func(k *Key) error {
		if hasStatus {
			k.Active = status == "active"
		}
		if hasDesc {
			k.Description, k.HasDesc = desc, true
		}
		return nil
	})
	v := oscredView(k, false, false)
	delete(v, "description")
	if hasDesc {
		v["description"] = k.Description
	}
	writeJSON(w, http.StatusOK, map[string]any{"credential": v})
}

func (s *Oscred) delete(w http.ResponseWriter, r *http.Request) {
	if _, k, ok := s.owned(w, r); ok {
		s.Store.delete(k.AK)
		w.WriteHeader(http.StatusNoContent)
	}
}

// securityToken issues a temporary key; it exists so pass-through can be shown.
func (s *Oscred) securityToken(w http.ResponseWriter, r *http.Request) {
	if s.caller(w, r) == nil {
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"credential": map[string]any{
		"access": randomFrom(upperDigits, 20), "secret": randomFrom(alnum, 40),
		"securitytoken": newID(32), "expires_at": timestamp(time.Now().Add(15 * time.Minute)),
	}})
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// randomFrom draws n characters; the slight modulo bias is harmless in a stand-in.
func randomFrom(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
