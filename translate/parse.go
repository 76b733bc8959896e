package translate

import (
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Limits on fields the bridge forwards. Keys become path segments and query
// values upstream, so they are held to the id alphabet.
const (
	MaxIDLen     = 128
	maxFieldLen  = 255
	maxSecretLen = 256
)

// bstr views b as a string without copying. Callers must not modify b while any
// string derived from it (a Cred's fields) is still in use: bodies are read once
// into their own buffers and never written afterwards.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// ValidID reports whether id is a path id side s accepts: 1–128 of A-Za-z0-9, and
// for Keystone exactly 64 lower-case hex digits.
func ValidID(s Side, id string) bool {
	if s.HashIDs() {
		return IsHashID(id)
	}
	return validAK(id)
}

func validAK(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// IsHashID reports whether id looks like sha256 hex, Keystone's ec2 credential id.
func IsHashID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidQueryValue is the check for user_id / project_id filters in a query string.
func ValidQueryValue(v string) bool { return validText(v, 1, maxFieldLen) }

// validText: at least min bytes, at most max runes, valid UTF-8, no ASCII control
// characters. One pass: it runs on every text field of every request.
func validText(v string, min, max int) bool {
	if len(v) < min {
		return false
	}
	runes := 0
	for i := 0; i < len(v); runes++ {
		if c := v[i]; c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		i += size
	}
	return runes <= max
}

// ParseRequest checks a client's request body for op in side s's dialect and
// returns it in neutral form. Every rule of dialects.md "Input checks" that can be
// judged from the body alone is applied here; a non-nil error is the 400 to answer.
// The strict scan is the only walk over the body: the rules read each member
// as it meets it (reader.go). Its refusal comes first, then a look-alike
// root name, then the first member a rule refuses.
func ParseRequest(s Side, op Op, body []byte) (Cred, *Error) {
	if len(body) == 0 {
		return Cred{}, ErrBadBody("request body is empty")
	}
	rd := reader{request: true, dialect: s.Dialect, op: op}
	if err := scanRequest(body, &rd); err != nil {
		return Cred{}, err
	}
	switch {
	case rd.lookalike != "":
		return Cred{}, refuseLookalike(rd.lookalike, "credential")
	case !rd.hasCred:
		return Cred{}, ErrBadBody(`request body must have a "credential" object`)
	case !rd.credObject:
		return Cred{}, ErrBadParam(`"credential" must be an object`)
	case rd.err != nil:
		return Cred{}, rd.err
	case s.Dialect == Oscred:
		return rd.c, oscredComplete(&rd.c, op)
	}
	return rd.c, nil
}

// refuseLookalike refuses a member name that is one of known in another letter
// case: Go's encoding/json would read it as that field where the bridge does
// not (an exact name is read by the parser's switch before this is asked).
func refuseLookalike(name string, known ...string) *Error {
	for _, k := range known {
		if name != k && strings.EqualFold(name, k) {
			return ErrBadParam(`member name "` + name + `" is "` + k + `" in another letter case`)
		}
	}
	return nil
}

// Member names each body level is read by, for refuseLookalike.
var (
	oscredFields = []string{"user_id", "description", "status"}
	ec2Fields    = []string{"user_id", "project_id", "type", "blob"}
)

// oscredMember reads one member of an oscred request's credential.
func oscredMember(c *Cred, op Op, name string, v gjson.Result) (err *Error) {
	switch name {
	case "user_id": // on update only to refuse a move (proxy's noMove)
		c.UserID, c.HasUserID, err = textField("user_id", v)
	case "description":
		c.Description, c.HasDescription, err = descField(v)
	case "status":
		if op != OpUpdate {
			break
		}
		if v.Type != gjson.String || (v.Str != "active" && v.Str != "inactive") {
			return ErrBadParam(`"status" must be "active" or "inactive"`)
		}
		c.Status = statusOf(v.Str)
	default:
		err = refuseLookalike(name, oscredFields...)
	}
	return err
}

// oscredComplete: an oscred update must change something.
func oscredComplete(c *Cred, op Op) *Error {
	if op == OpUpdate && c.Status == StatusUnset && !c.HasDescription {
		return ErrBadParam(`"credential" must carry "status" or "description"`)
	}
	return nil
}

// ec2Member reads one member of an ec2blob request's credential, its blob
// aside.
func ec2Member(c *Cred, name string, v gjson.Result) (err *Error) {
	switch name {
	case "user_id":
		c.UserID, c.HasUserID, err = textField("user_id", v)
	case "project_id":
		c.ProjectID, c.HasProjectID, err = textField("project_id", v)
	case "type":
		if v.Type != gjson.String || v.Str != "ec2" {
			return ErrBadParam(`"type" must be "ec2": the bridge manages access keys only`)
		}
		c.Type = "ec2"
	default:
		err = refuseLookalike(name, ec2Fields...)
	}
	return err
}

func blobMember(c *Cred, name string, v gjson.Result) *Error {
	switch name {
	case "access":
		if v.Type != gjson.String || !validAK(v.Str) {
			return ErrBadParam(`"blob.access" must be 1-128 characters of A-Za-z0-9`)
		}
		c.Access = v.Str
	case "secret":
		if v.Type != gjson.String || !validText(v.Str, 1, maxSecretLen) {
			return ErrBadParam(`"blob.secret" must be a string of 1-256 printable characters`)
		}
		c.Secret = v.Str
	case "status":
		if c.Status = ec2Status(v); c.Status == StatusUnset {
			return ErrBadParam(`"blob.status" must be "Active" or "Inactive"`)
		}
	case "description":
		var err *Error
		c.Description, c.HasDescription, err = descField(v)
		return err
	default:
		// Sent on as written (same dialect), a member the bridge did not
		// check could mean something to the upstream: Keystone scopes the
		// tokens an EC2 key issues by its blob's trust_id, app_cred_id and
		// access_token_id. So a blob holds the four known members only.
		return ErrBadParam(`"blob" may hold only "access", "secret", "status" and "description"`)
	}
	return nil
}

func textField(name string, v gjson.Result) (string, bool, *Error) {
	if v.Type != gjson.String || !validText(v.Str, 1, maxFieldLen) {
		return "", false, ErrBadParam(`"` + name + `" must be a string of 1-255 printable characters`)
	}
	return v.Str, true, nil
}

func descField(v gjson.Result) (string, bool, *Error) {
	if v.Type != gjson.String || !validText(v.Str, 0, MaxDescription) {
		return "", false, ErrBadParam(`"description" must be a string of at most 255 printable characters`)
	}
	return v.Str, true, nil
}

func statusOf(s string) Status {
	switch s {
	case "active":
		return StatusActive
	case "inactive":
		return StatusInactive
	}
	return StatusUnset
}

// ec2Status reads a blob status in any letter case.
func ec2Status(v gjson.Result) Status {
	if v.Type != gjson.String || len(v.Str) > 8 {
		return StatusUnset
	}
	if strings.EqualFold(v.Str, "active") {
		return StatusActive
	}
	if strings.EqualFold(v.Str, "inactive") {
		return StatusInactive
	}
	return StatusUnset
}

// ParseAnswer reads a single-credential answer (`{"credential":{...}}`) from an
// upstream of side s. It is tolerant of extra and mistyped fields (they are left
// out), but an answer without a credential object is garbage: ok is false. One
// walk reads it (scanAnswer), as gjson.Valid, gjson.Get and ReadCred did.
func ParseAnswer(s Side, body []byte) (c Cred, ok bool) {
	var rd reader
	if !scanAnswer(body, &rd) || !rd.hasCred || !rd.credObject {
		return c, false
	}
	rd.c.settle(s)
	return rd.c, true
}

// ForEachInList calls fn for each credential of a list answer from side s. ok is
// false when the answer is not a list answer.
func ForEachInList(s Side, body []byte, fn func(Cred)) (ok bool) {
	if !scanAnswer(body, nil) { // gjson.Valid's syntax, and a bounded depth
		return false
	}
	l := gjson.Get(bstr(body), "credentials")
	if !l.IsArray() {
		return false
	}
	l.ForEach(func(_, v gjson.Result) bool {
		if v.IsObject() {
			fn(ReadCred(s, v))
		}
		return true
	})
	return true
}

// ReadCred reads one credential object of side s leniently.
func ReadCred(s Side, cr gjson.Result) Cred {
	var c Cred
	cr.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "blob" && v.IsObject() {
			readBlob(&c, v)
			c.Blob = BlobObject
			return true
		}
		c.field(k.Str, v)
		return true
	})
	c.settle(s)
	return c
}

// field reads one credential member leniently: a member of another type than
// the dialects give it is left out.
func (c *Cred) field(name string, v gjson.Result) {
	if v.Type != gjson.String {
		return
	}
	switch name {
	case "user_id":
		c.UserID, c.HasUserID = v.Str, true
	case "project_id":
		c.ProjectID, c.HasProjectID = v.Str, true
	case "create_time":
		c.CreateTime = v.Str
	case "last_use_time":
		c.LastUseTime = v.Str
	case "subject_ibm_id":
		c.SubjectIBMID = v.Str
	case "id":
		c.ID = v.Str
	case "type":
		c.Type = v.Str
	case "blob":
		if b := gjson.Parse(v.Str); b.IsObject() {
			readBlob(c, b)
			c.Blob = BlobString
		}
	default: // access, secret, status, description: read as in a blob
		c.blobField(name, v)
	}
}

// settle: a Keystone blob without status means active.
func (c *Cred) settle(s Side) {
	if s.Dialect == EC2Blob && c.Status == StatusUnset && c.Access != "" {
		c.Status = StatusActive
	}
}

func readBlob(c *Cred, b gjson.Result) {
	b.ForEach(func(k, v gjson.Result) bool {
		c.blobField(k.Str, v)
		return true
	})
}

// blobField reads one blob member leniently (oscred's lower-case status is one
// of the cases ec2Status accepts).
func (c *Cred) blobField(name string, v gjson.Result) {
	if v.Type != gjson.String {
		return
	}
	switch name {
	case "access":
		c.Access = v.Str
	case "secret":
		c.Secret = v.Str
	case "status":
		c.Status = ec2Status(v)
	case "description":
		c.Description, c.HasDescription = v.Str, true
	}
}
