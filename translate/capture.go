package translate

import (
	"strings"

	"github.com/tidwall/gjson"
)

// The capture: while the scan walks a credential document it keeps the members
// the parsers read — the root's "credential", every member of it, and every
// member of its "blob" object — so no second parser walks the same bytes. Each
// value is gjson's own reading of the bytes the scan accepted (gjson.Parse of
// the value alone), so the parsers see exactly what a gjson walk gave them.

// role is what the capture keeps of an object's members.
type role uint8

const (
	roleNone role = iota
	roleRoot      // the document: its "credential" (and, for a request, look-alike names)
	roleCred      // the credential object: every member
	roleBlob      // a blob object: every member
)

// member is one kept member, as spans of the document: no pointer, so a
// capture stays on its parser's stack. For a credential member whose value is
// a kept blob object, blob.lo:blob.hi indexes that object's members in
// capture.blobs.
type member struct {
	name, val span // the name with its quotes; the value as written
	blob      span
	plain     bool // the name has no escape and no byte outside ASCII
}

// span is s[lo:hi] of the document (int32: bodies are far below 2 GiB, and a
// smaller member is less to clear and copy on every parse).
type span struct{ lo, hi int32 }

func spanOf(lo, hi int) span { return span{int32(lo), int32(hi)} }

// members is a list kept on the stack while short.
type members struct {
	inline [10]member
	n      int
	more   []member
}

func (l *members) add(m member) {
	if l.n < len(l.inline) {
		l.inline[l.n] = m
	} else {
		l.more = append(l.more, m)
	}
	l.n++
}

func (l *members) len() int { return l.n }

func (l *members) at(i int) *member {
	if i < len(l.inline) {
		return &l.inline[i]
	}
	return &l.more[i-len(l.inline)]
}

// capture is what one scan of the document s kept.
type capture struct {
	s string
	// hasCred: the root has a "credential" member (the first, for an answer:
	// gjson.Get's reading); cred is it.
	hasCred bool
	cred    member
	// creds are the credential object's members in document order; blobs the
	// members of its blob objects (a strict scan allows one).
	creds, blobs members
	// lookalike is the first root member whose name is "credential" in
	// another letter case (requests only).
	hasLookalike bool
	lookalike    member
}

// name is m's name unescaped, as gjson reads it.
func (c *capture) name(m *member) string {
	return memberName(c.s[m.name.lo:m.name.hi], m.plain)
}

// value is m's value as gjson reads it: gjson.Parse of the value alone, but a
// string without an escape (nearly all) is its bytes between the quotes.
func (c *capture) value(m *member) gjson.Result {
	raw := c.s[m.val.lo:m.val.hi]
	if raw[0] == '"' && strings.IndexByte(raw, '\\') < 0 {
		return gjson.Result{Type: gjson.String, Raw: raw, Str: raw[1 : len(raw)-1]}
	}
	return gjson.Parse(raw)
}

// child is the role of the object the value of a member named name (of an
// object of role r) may be.
func (c *capture) child(r role, name string) role {
	switch {
	case r == roleRoot && name == "credential" && !c.hasCred:
		return roleCred
	case r == roleCred && name == "blob":
		return roleBlob
	}
	return roleNone
}

// keep records member m, named name, of an object of role r.
func (c *capture) keep(r role, name string, m member, strict bool) {
	switch r {
	case roleRoot:
		switch {
		case name == "credential" && !c.hasCred:
			c.hasCred, c.cred = true, m
		case strict && !c.hasLookalike && name != "credential" && strings.EqualFold(name, "credential"):
			c.hasLookalike, c.lookalike = true, m
		}
	case roleCred:
		c.creds.add(m)
	case roleBlob:
		c.blobs.add(m)
	}
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
