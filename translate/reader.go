package translate

import (
	"strings"

	"github.com/tidwall/gjson"
)

// The reader: while the scan walks a credential document it hands the members
// the parsers read — the root's "credential", every member of it, and every
// member of its blob object — to the parsers' rules as it meets them, so no
// second parser walks the same bytes and nothing is kept per member (an
// upstream's answer may have hundreds of thousands). Each value is gjson's own
// reading of the bytes the scan accepted (gjson.Parse of the value alone), so
// the rules see what a gjson walk gave them, in the same order.

// role is what the reader does with an object's members.
type role uint8

const (
	roleNone role = iota
	roleRoot      // the document: find its "credential" (and, for a request, look-alike names)
	roleCred      // the credential object: read every member
	roleBlob      // a blob object: read every member
)

// reader is one parse's state. It holds its Cred by value and no pointer to
// anything on a stack: escape analysis does not tell a struct's fields apart,
// so the document's strings stored into the Cred would drag any such pointer
// (and what it points to) onto the heap.
type reader struct {
	// request: a client's request, read by the input rules (ParseRequest);
	// else an upstream's answer, read leniently (ParseAnswer).
	request bool
	dialect Dialect // a request's
	op      Op      // a request's

	c Cred
	// hasCred: the root has a "credential" member (the first, for an answer:
	// gjson.Get's reading); credObject: it is an object.
	hasCred, credObject bool
	// err is a request's first refusal by a member rule, in document order.
	err *Error
	// lookalike is the first root member name that is "credential" in
	// another letter case (requests only).
	lookalike string
}

// child is the role of the object the value of a member named name, of an
// object of role r, may be. An oscred request has no blob: a member of that
// name is only looked at as a look-alike.
func (rd *reader) child(r role, name string) role {
	switch {
	case r == roleRoot && name == "credential" && !rd.hasCred:
		return roleCred
	case r == roleCred && name == "blob" && (!rd.request || rd.dialect == EC2Blob):
		return roleBlob
	}
	return roleNone
}

// member reads one member, named name (unescaped) and of value raw (as
// written), of an object of role r; the scan has walked the value.
func (rd *reader) member(r role, name, raw string) {
	switch r {
	case roleRoot:
		switch {
		case name == "credential" && !rd.hasCred:
			rd.hasCred, rd.credObject = true, raw[0] == '{'
		case rd.request && rd.lookalike == "" && name != "credential" && strings.EqualFold(name, "credential"):
			rd.lookalike = name
		}
	case roleCred:
		if rd.request {
			rd.requestMember(name, valueOf(raw))
		} else {
			rd.answerMember(name, valueOf(raw))
		}
	case roleBlob:
		if !rd.request {
			rd.c.blobField(name, valueOf(raw))
		} else if rd.err == nil {
			rd.err = blobMember(&rd.c, name, valueOf(raw))
		}
	}
}

// requestMember applies the input rules to one member of a request's
// credential; after the first refusal the rest are not looked at.
func (rd *reader) requestMember(name string, v gjson.Result) {
	switch {
	case rd.err != nil:
	case rd.dialect == Oscred:
		rd.err = oscredMember(&rd.c, rd.op, name, v)
	case name == "blob":
		rd.err = rd.requestBlob(v)
	default:
		rd.err = ec2Member(&rd.c, name, v)
	}
}

// requestBlob: an ec2blob blob in either form, strictly. An object's members
// were read as the scan met them; a Keystone string blob is a document of its
// own, held to the same scan, which hands its members to the rules as well.
// rd.err is nil here (requestMember), so what a member of the string refuses
// is the blob's refusal, and the string's own scan refusal, when there is
// one, comes before it.
func (rd *reader) requestBlob(v gjson.Result) *Error {
	switch {
	case v.IsObject():
		rd.c.Blob = BlobObject
	case v.Type == gjson.String:
		if err := scanDoc(v.Str, `"blob" string`, rd, roleBlob); err != nil {
			return ErrBadParam(err.Message)
		}
		rd.c.Blob = BlobString
		return rd.err
	default:
		return ErrBadParam(`"blob" must be an object or a JSON-encoded string`)
	}
	return nil
}

// answerMember reads one member of an answer's credential leniently; a blob
// object's members were read as the scan met them.
func (rd *reader) answerMember(name string, v gjson.Result) {
	if name == "blob" && v.IsObject() {
		rd.c.Blob = BlobObject
		return
	}
	rd.c.field(name, v)
}

// valueOf is a value as gjson reads it: gjson.Parse of the value alone, but a
// string without an escape (nearly all) is its bytes between the quotes.
func valueOf(raw string) gjson.Result {
	if raw[0] == '"' && strings.IndexByte(raw, '\\') < 0 {
		return gjson.Result{Type: gjson.String, Raw: raw, Str: raw[1 : len(raw)-1]}
	}
	return gjson.Parse(raw)
}

// memberName is a member name unescaped, as gjson reads it; quoted is the name
// with its quotes, as the scan accepted it.
func memberName(quoted string, plain bool) string {
	raw := quoted[1 : len(quoted)-1]
	if plain || strings.IndexByte(raw, '\\') < 0 {
		return raw
	}
	return gjson.Parse(quoted).Str
}
