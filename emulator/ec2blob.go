package emulator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// EC2Blob is the reference Keystone-derived credential API, in IBM Cloud Object
// Storage's flavor (path /credentials, id = AK, blob an object, 409 on quota,
// Swift transaction headers) or OpenStack Keystone's (path /v3/credentials,
// id = sha256(AK), blob a JSON string, 403 on quota).
type EC2Blob struct {
	Counter
	*Store
	Dir      *Directory
	Keystone bool
	prefix   string
}

// NewEC2Blob serves keys for dir's users; keystone picks the flavor.
func NewEC2Blob(dir *Directory, keystone bool) *EC2Blob {
	s := &EC2Blob{Store: newStore(), Dir: dir, Keystone: keystone, prefix: "/credentials"}
	if keystone {
		s.prefix = "/v3/credentials"
	}
	return s
}

// Handler is the HTTP surface.
func (s *EC2Blob) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+s.prefix, s.create)
	mux.HandleFunc("GET "+s.prefix, s.list)
	mux.HandleFunc("GET "+s.prefix+"/{id}", s.get)
	mux.HandleFunc("PATCH "+s.prefix+"/{id}", s.update)
	mux.HandleFunc("DELETE "+s.prefix+"/{id}", s.delete)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		keystoneError(w, http.StatusNotFound, "The resource could not be found.")
	})
	return s.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.Keystone {
			swiftHeaders(w.Header())
		}
		mux.ServeHTTP(w, r)
	}))
}

func (s *EC2Blob) id(ak string) string {
	if s.Keystone {
		sum := sha256.Sum256([]byte(ak))
		return hex.EncodeToString(sum[:])
	}
	return ak
}

// byID finds a key by its path id.
func (s *EC2Blob) byID(id string) (Key, bool) {
	if !s.Keystone {
		return s.Store.get(id)
	}
	for _, k := range s.Keys(nil) {
		if s.id(k.AK) == id {
			return k, true
		}
	}
	return Key{}, false
}

func (s *EC2Blob) caller(w http.ResponseWriter, r *http.Request) *User {
	u, _, ok := s.Dir.Lookup(r.Context(), r.Header.Get("X-Auth-Token"))
	if !ok {
		keystoneError(w, http.StatusUnauthorized, "The request you have made requires authentication.")
		return nil
	}
	return u
}

func (s *EC2Blob) view(r *http.Request, k Key) map[string]any {
	blob := map[string]any{"access": k.AK}
	if k.SK != "" {
		blob["secret"] = k.SK
	}
	if k.StatusSet {
		blob["status"] = map[bool]string{true: "Active", false: "Inactive"}[k.Active]
	}
	if k.HasDesc {
		blob["description"] = k.Description
	}
	v := map[string]any{"user_id": k.UserID, "project_id": k.ProjectID, "type": "ec2", "id": s.id(k.AK)}
	if s.Keystone {
		raw, _ := json.Marshal(blob)
		v["blob"] = string(raw)
		v["links"] = map[string]any{"self": "http://" + r.Host + s.prefix + "/" + s.id(k.AK)}
	} else {
		v["blob"] = blob
		if k.SubjectIBMID != "" {
			v["subject_ibm_id"] = k.SubjectIBMID
		}
	}
	return v
}

// blobFields is what a blob may carry.
type blobFields struct {
	access, secret, status, desc  string
	hasStatus, hasDesc, hasSecret bool
}

// readBlob reads the blob in the flavor's form (Keystone: a JSON string only;
// IBM: an object, or a string as its Keystone heritage allows).
func (s *EC2Blob) readBlob(v any) (blobFields, string) {
	var m map[string]any
	switch b := v.(type) {
	case string:
		if err := json.Unmarshal([]byte(b), &m); err != nil || m == nil {
			return blobFields{}, "Invalid blob: not a JSON object."
		}
	case map[string]any:
		if s.Keystone {
			return blobFields{}, "Invalid input for field 'blob': not a string."
		}
		m = b
	default:
		return blobFields{}, "Invalid input for field 'blob'."
	}
	var f blobFields
	var ok bool
	if a, present := m["access"]; present {
		if f.access, ok = a.(string); !ok || f.access == "" {
			return f, "Invalid blob: access must be a string."
		}
	}
	if sec, present := m["secret"]; present {
		if f.secret, ok = sec.(string); !ok {
			return f, "Invalid blob: secret must be a string."
		}
		f.hasSecret = true
	}
	if st, present := m["status"]; present {
		f.status, _ = st.(string)
		if !strings.EqualFold(f.status, "active") && !strings.EqualFold(f.status, "inactive") {
			return f, "Invalid blob: status must be Active or Inactive."
		}
		f.hasStatus = true
	}
	if d, present := m["description"]; present {
		if f.desc, ok = d.(string); !ok || utf8.RuneCountInString(f.desc) > 255 {
			return f, "Invalid blob: description."
		}
		f.hasDesc = true
	}
	return f, ""
}

func (s *EC2Blob) create(w http.ResponseWriter, r *http.Request) {
	u := s.caller(w, r)
	if u == nil {
		return
	}
	m, status, msg := decodeObject(r)
	if status != 0 {
		keystoneError(w, status, msg)
		return
	}
	c, _ := m["credential"].(map[string]any)
	userID, _ := c["user_id"].(string)
	typ, _ := c["type"].(string)
	if c == nil || userID == "" || (s.Keystone && typ == "") || (typ != "" && typ != "ec2") {
		keystoneError(w, http.StatusBadRequest, "Invalid input: credential needs user_id and type ec2.")
		return
	}
	if userID != u.ID && !u.IsAdmin() {
		notAuthorized(w, "identity:create_credential")
		return
	}
	owner, ok := s.Dir.User(userID)
	if !ok {
		keystoneError(w, http.StatusNotFound, "Could not find user: "+userID+".")
		return
	}
	k := Key{UserID: userID, Active: true, Created: time.Now()}
	if p, _ := c["project_id"].(string); p != "" {
		k.ProjectID = p
	} else {
		k.ProjectID = owner.ProjectID
	}
	if b, present := c["blob"]; present {
		f, bad := s.readBlob(b)
		if bad != "" {
			keystoneError(w, http.StatusBadRequest, bad)
			return
		}
		k.AK, k.SK, k.Description, k.HasDesc = f.access, f.secret, f.desc, f.hasDesc
		k.StatusSet = f.hasStatus
		if f.hasStatus {
			k.Active = strings.EqualFold(f.status, "active")
		}
	} else if s.Keystone {
		keystoneError(w, http.StatusBadRequest, "Invalid input: blob is required.")
		return
	}
	if s.Keystone && (k.AK == "" || k.SK == "") {
		keystoneError(w, http.StatusBadRequest, "Invalid blob: an ec2 credential needs access and secret.")
		return
	}
	if k.AK == "" { // IBM generates the pair, shaped like its HMAC keys
		k.AK, k.SK, k.StatusSet = newID(16), newID(24), true
	}
	if !s.Keystone {
		k.SubjectIBMID = "IBMid-" + strings.ToUpper(newID(5))
	}
	switch err := s.Store.create(k); err {
	case errQuota:
		if s.Keystone {
			keystoneError(w, http.StatusForbidden, "Unable to create additional credentials, maximum of 2 already exceeded for user.")
		} else {
			keystoneError(w, http.StatusConflict, "The maximum number of access keys for this user has been reached.")
		}
		return
	case errExists:
		keystoneError(w, http.StatusConflict, "Conflict occurred attempting to store credential - Duplicate entry.")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"credential": s.view(r, k)})
}

func (s *EC2Blob) list(w http.ResponseWriter, r *http.Request) {
	u := s.caller(w, r)
	if u == nil {
		return
	}
	q := r.URL.Query()
	userID, projectID, typ := q.Get("user_id"), q.Get("project_id"), q.Get("type")
	if !u.IsAdmin() {
		if userID != "" && userID != u.ID && !s.Keystone {
			keystoneError(w, http.StatusForbidden, "You are not authorized to perform the requested action.")
			return
		}
		userID = u.ID // Keystone shows a plain user only their own credentials
	}
	out := []map[string]any{}
	if typ == "" || typ == "ec2" {
		for _, k := range s.KeysOf(userID, func(k Key) bool { return projectID == "" || k.ProjectID == projectID }) {
			out = append(out, s.view(r, k))
		}
	}
	body := map[string]any{"credentials": out}
	if s.Keystone {
		body["links"] = map[string]any{"self": "http://" + r.Host + s.prefix, "previous": nil, "next": nil}
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *EC2Blob) owned(w http.ResponseWriter, r *http.Request) (Key, bool) {
	u := s.caller(w, r)
	if u == nil {
		return Key{}, false
	}
	k, ok := s.byID(r.PathValue("id"))
	if !ok {
		keystoneError(w, http.StatusNotFound, "Could not find credential: "+r.PathValue("id")+".")
		return Key{}, false
	}
	if k.UserID != u.ID && !u.IsAdmin() {
		keystoneError(w, http.StatusForbidden, "You are not authorized to perform the requested action.")
		return Key{}, false
	}
	return k, true
}

func (s *EC2Blob) get(w http.ResponseWriter, r *http.Request) {
	if k, ok := s.owned(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"credential": s.view(r, k)})
	}
}

func (s *EC2Blob) update(w http.ResponseWriter, r *http.Request) {
	k, ok := s.owned(w, r)
	if !ok {
		return
	}
	m, status, msg := decodeObject(r)
	if status != 0 {
		keystoneError(w, status, msg)
		return
	}
	c, _ := m["credential"].(map[string]any)
	if c == nil {
		keystoneError(w, http.StatusBadRequest, "Invalid input: credential is required.")
		return
	}
	if uid, present := c["user_id"]; present && uid != k.UserID {
		keystoneError(w, http.StatusBadRequest, "Invalid input: user_id cannot be changed.")
		return
	}
	if typ, present := c["type"]; present && typ != "ec2" {
		keystoneError(w, http.StatusBadRequest, "Invalid input: type must be ec2.")
		return
	}
	var f blobFields
	b, hasBlob := c["blob"]
	if hasBlob {
		var bad string
		if f, bad = s.readBlob(b); bad != "" {
			keystoneError(w, http.StatusBadRequest, bad)
			return
		}
		if f.access != k.AK {
			keystoneError(w, http.StatusBadRequest, "Invalid blob: access does not match the credential id.")
			return
		}
	}
	k, _, _ = s.Store.update(k.AK, func(k *Key) error {
		if p, ok := c["project_id"].(string); ok && p != "" {
			k.ProjectID = p
		}
		if hasBlob { // the blob is stored as sent: what it leaves out is gone
			k.SK, k.Description, k.HasDesc, k.StatusSet = f.secret, f.desc, f.hasDesc, f.hasStatus
			k.Active = !f.hasStatus || strings.EqualFold(f.status, "active")
		}
		return nil
	})
	writeJSON(w, http.StatusOK, map[string]any{"credential": s.view(r, k)})
}

func (s *EC2Blob) delete(w http.ResponseWriter, r *http.Request) {
	if k, ok := s.owned(w, r); ok {
		s.Store.delete(k.AK)
		w.WriteHeader(http.StatusNoContent)
	}
}
