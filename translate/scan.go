package translate

import (
	"encoding/binary"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// The strict scan (dialects.md "One meaning per body"). gjson reads the first of
// two members with one name; Go's encoding/json and Python's json.loads (so
// Keystone) read the last, and Go also matches names without regard to case. A
// body that two parsers can read two ways would let policy check one request
// and the upstream carry out another, so before anything is parsed every body is
// held to one reading:
//
//   - strict RFC 8259 JSON, one object, nothing after it;
//   - no object with two member names that are equal after unescaping, in any
//     letter case (Unicode simple folding, as Go's decoder matches them);
//   - no member name with a control character (some parsers stop at NUL);
//   - no lone UTF-16 surrogate in an escape (Go reads U+FFFD, Python keeps it);
//   - at most maxDepth levels of nesting.
//
// It is one pass over the bytes and allocates nothing unless an object has more
// members than fit in the small table kept on the stack.

// maxDepth bounds nesting: credential bodies are three levels deep.
const maxDepth = 32

// maxAnswerDepth bounds an upstream answer's nesting (gjson.Valid has no
// bound): real ones are four levels deep, and the scan takes stack each
// level — 4 MiB of "{" would need ~450 MiB, near the size past which Go ends
// the process. Deeper is garbage (502).
const maxAnswerDepth = 512

// inlineMembers is how many member names of one object are compared pairwise;
// past it, folded names go into a map (a quadratic scan of 5,000 names would
// cost milliseconds).
const inlineMembers = 8

// ScanBody holds a request body to the rules above; nil means it has one reading.
func ScanBody(b []byte) *Error { return scanRequest(b, nil) }

// scanRequest is ScanBody handing rd (when not nil) what the request parsers
// read (reader.go).
func scanRequest(b []byte, rd *reader) *Error {
	if !isASCII(bstr(b)) && !utf8.Valid(b) {
		return ErrBadBody("request body is not valid UTF-8")
	}
	return scanDoc(bstr(b), "request body", rd, roleRoot)
}

// scanDoc scans one JSON document whose top level must be an object, of role r
// for the reader rd (nil: none); what names the document in error messages.
func scanDoc(s, what string, rd *reader, r role) *Error {
	sc := scanner{s: s, ascii: isASCII(s)}
	sc.space()
	if sc.i >= len(s) || s[sc.i] != '{' {
		return ErrBadBody(what + " must be a JSON object")
	}
	if !sc.value(0, r, rd) {
		return sc.fail(what)
	}
	if sc.space(); sc.i != len(s) {
		return ErrBadBody(what + " is not valid JSON: data after the object")
	}
	return nil
}

// scanAnswer checks an upstream's answer, an object, handing rd (when not nil)
// what ParseAnswer reads. It holds the answer to JSON as gjson.Valid does, and
// to at most maxAnswerDepth levels — none of the rules above, which bind
// clients: an upstream's answer is read as the gjson walk it replaced read it.
func scanAnswer(b []byte, rd *reader) bool {
	s := bstr(b)
	sc := scanner{s: s, ascii: isASCII(s), lenient: true}
	sc.space()
	if sc.i >= len(s) || s[sc.i] != '{' || !sc.value(0, roleRoot, rd) {
		return false
	}
	sc.space()
	return sc.i == len(s)
}

// scanner is one scan's position. The reader it hands members to (reader.go)
// travels as a parameter, not in here: escape analysis does not tell a
// struct's fields apart, and the document's strings the reader stores away
// would drag it off the stack with them.
type scanner struct {
	s string
	i int
	// ascii: s has no byte outside ASCII (then only escapes make a name
	// more than its bytes).
	ascii bool
	// why the scan failed when it was not a syntax error.
	why string
	// lenient: an upstream's answer (scanAnswer): syntax only.
	lenient bool
}

func (sc *scanner) fail(what string) *Error {
	if sc.why != "" {
		return ErrBadBody(what + " " + sc.why)
	}
	return ErrBadBody(what + " is not valid JSON")
}

func (sc *scanner) space() {
	s, i := sc.s, sc.i
	for i < len(s) && s[i] <= ' ' && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	sc.i = i
}

// value scans one value starting at sc.i (after white space); an object is of
// role r for the reader rd (nil: none).
func (sc *scanner) value(depth int, r role, rd *reader) bool {
	if sc.i >= len(sc.s) {
		return false
	}
	switch c := sc.s[sc.i]; {
	case c == '{':
		return sc.object(depth+1, r, rd)
	case c == '[':
		return sc.array(depth + 1)
	case c == '"':
		_, _, ok := sc.str()
		return ok
	case c == '-' || '0' <= c && c <= '9':
		return sc.number()
	}
	return sc.literal("true") || sc.literal("false") || sc.literal("null")
}

func (sc *scanner) literal(lit string) bool {
	if len(sc.s)-sc.i >= len(lit) && sc.s[sc.i:sc.i+len(lit)] == lit {
		sc.i += len(lit)
		return true
	}
	return false
}

func (sc *scanner) deep(depth int) bool {
	limit, why := maxDepth, "nests deeper than 32 levels"
	if sc.lenient {
		limit, why = maxAnswerDepth, "nests deeper than 512 levels"
	}
	if depth > limit {
		sc.why = why
		return true
	}
	return false
}

func (sc *scanner) array(depth int) bool {
	if sc.deep(depth) {
		return false
	}
	sc.i++ // [
	sc.space()
	if sc.i < len(sc.s) && sc.s[sc.i] == ']' {
		sc.i++
		return true
	}
	for {
		sc.space()
		if !sc.value(depth, roleNone, nil) {
			return false
		}
		if more, ok := sc.after(']'); !more {
			return ok
		}
	}
}

// after reads what follows an element or member: ',' (more to come) or the
// closing byte (done); anything else is not JSON.
func (sc *scanner) after(closing byte) (more, ok bool) {
	sc.space()
	if sc.i >= len(sc.s) {
		return false, false
	}
	switch sc.s[sc.i] {
	case ',':
		sc.i++
		return true, true
	case closing:
		sc.i++
		return false, true
	}
	return false, false
}

// object scans an object of role r and compares its member names.
func (sc *scanner) object(depth int, r role, rd *reader) bool {
	if sc.deep(depth) {
		return false
	}
	sc.i++ // {
	sc.space()
	if sc.i < len(sc.s) && sc.s[sc.i] == '}' {
		sc.i++
		return true
	}
	var names memberNames
	for {
		sc.space()
		if sc.i >= len(sc.s) || sc.s[sc.i] != '"' {
			return false
		}
		q := sc.i
		name, plain, ok := sc.str()
		if !ok || !sc.lenient && (!plain && !sc.checkName(name) || !names.add(name, plain)) {
			if ok && sc.why == "" {
				sc.why = "repeats a member name in one object (names are compared unescaped and in any letter case)"
			}
			return false
		}
		quoted := sc.s[q:sc.i]
		sc.space()
		if sc.i >= len(sc.s) || sc.s[sc.i] != ':' {
			return false
		}
		sc.i++
		sc.space()
		if !sc.memberValue(depth, r, rd, quoted, plain) {
			return false
		}
		if more, ok := sc.after('}'); !more {
			return ok
		}
	}
}

// memberValue scans the value of a member of an object of role r and hands
// it to the reader; name is the member's name as written, quotes included.
func (sc *scanner) memberValue(depth int, r role, rd *reader, name string, plain bool) bool {
	if rd == nil || r == roleNone {
		return sc.value(depth, roleNone, nil)
	}
	unescaped := memberName(name, plain)
	start := sc.i
	if !sc.value(depth, rd.child(r, unescaped), rd) {
		return false
	}
	rd.member(r, unescaped, sc.s[start:sc.i])
	return true
}

// checkName refuses member names with a control character once unescaped.
func (sc *scanner) checkName(raw string) bool {
	for i := 0; i < len(raw); {
		r, n := nextRune(raw, i)
		if r < 0x20 || r == 0x7f {
			sc.why = "has a member name with a control character"
			return false
		}
		i = n
	}
	return true
}

// str scans a string at sc.i and returns its raw content (between the quotes,
// escapes as written); plain says it has no escape and no byte outside ASCII.
func (sc *scanner) str() (raw string, plain, ok bool) {
	s := sc.s
	start := sc.i + 1
	i := start
	plain = true
	for i < len(s) {
		c := s[i]
		if plainByte[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			sc.i = i + 1
			raw = s[start:i]
			return raw, plain && (sc.ascii || isASCII(raw)), true
		case c == '\\':
			sc.i, plain = i, false
			if !sc.escape() {
				return "", false, false
			}
			i = sc.i
		default: // a control character
			return "", false, false
		}
	}
	return "", false, false
}

// plainByte: bytes a string holds as they are (not a quote, a backslash or a
// control character; UTF-8 was checked as a whole beforehand).
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// escape checks the escape at sc.i and moves past it. A \u escape must be a
// whole character: a high surrogate followed by a low one, or neither.
func (sc *scanner) escape() bool {
	if sc.i+1 >= len(sc.s) {
		return false
	}
	switch sc.s[sc.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		sc.i += 2
		return true
	case 'u':
	default:
		return false
	}
	r, ok := hex4(sc.s, sc.i+2)
	if !ok {
		return false
	}
	sc.i += 6
	switch {
	case sc.lenient: // gjson.Valid takes any four hex digits
	case utf16.IsSurrogate(r) && r < 0xdc00: // high: a low one must follow
		lo, ok := hex4(sc.s, sc.i+2)
		if !ok || sc.i+1 >= len(sc.s) || sc.s[sc.i] != '\\' || sc.s[sc.i+1] != 'u' || lo < 0xdc00 || lo > 0xdfff {
			sc.why = "has an unpaired UTF-16 surrogate in an escape"
			return false
		}
		sc.i += 6
	case utf16.IsSurrogate(r):
		sc.why = "has an unpaired UTF-16 surrogate in an escape"
		return false
	}
	return true
}

// hex4 reads the four hex digits at s[i:].
func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func (sc *scanner) number() bool {
	s, i := sc.s, sc.i
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = digits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		if j := digits(s, i+1); j > i+1 {
			i = j
		} else {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return false
		}
		i = j
	}
	sc.i = i
	return true
}

func digits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// memberNames remembers one object's names: a few pairwise, many in a map.
type memberNames struct {
	inline [inlineMembers]string
	plain  [inlineMembers]bool
	n      int
	many   map[string]struct{}
}

// add records raw (a name as written; plain as str reported) and reports false
// when the object already has a name equal to it.
func (m *memberNames) add(raw string, plain bool) bool {
	if m.many != nil {
		return m.addFolded(raw)
	}
	for i, prev := range m.inline[:m.n] {
		if sameName(prev, raw, plain && m.plain[i]) {
			return false
		}
	}
	if m.n < len(m.inline) {
		m.inline[m.n], m.plain[m.n] = raw, plain
		m.n++
		return true
	}
	m.many = make(map[string]struct{}, 2*inlineMembers)
	for _, prev := range m.inline {
		m.many[foldName(prev)] = struct{}{}
	}
	return m.addFolded(raw)
}

func (m *memberNames) addFolded(raw string) bool {
	f := foldName(raw)
	if _, dup := m.many[f]; dup {
		return false
	}
	m.many[f] = struct{}{}
	return true
}

// sameName compares two raw names unescaped and in any letter case; plain:
// both are plain ASCII (so letter case is all folding can change, and lengths
// must match).
func sameName(a, b string, plain bool) bool {
	if plain {
		if len(a) != len(b) {
			return false
		}
		for i := 0; i < len(a); i++ {
			if lower(a[i]) != lower(b[i]) {
				return false
			}
		}
		return true
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		var r1, r2 rune
		r1, i = nextRune(a, i)
		r2, j = nextRune(b, j)
		if foldRune(r1) != foldRune(r2) {
			return false
		}
	}
	return i == len(a) && j == len(b)
}

// isASCII reports whether s has no byte outside ASCII, eight bytes at a time.
func isASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if load8(s, i)&highBits != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// load8 reads s[i:i+8] as one little-endian word.
func load8(s string, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// foldName is raw unescaped, each character replaced by the least of its case
// orbit, so two names are the same exactly when their foldName are equal.
func foldName(raw string) string {
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		var r rune
		r, i = nextRune(raw, i)
		b = utf8.AppendRune(b, foldRune(r))
	}
	return string(b)
}

// foldRune is the least rune of r's simple case-folding orbit.
func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < least {
			least = f
		}
	}
	return least
}

// nextRune decodes the character at raw[i:] (an escape or UTF-8) of a string the
// scanner accepted, and returns it with the index after it.
func nextRune(raw string, i int) (rune, int) {
	if raw[i] != '\\' {
		if raw[i] < utf8.RuneSelf {
			return rune(raw[i]), i + 1
		}
		r, n := utf8.DecodeRuneInString(raw[i:])
		return r, i + n
	}
	switch raw[i+1] {
	case 'u':
		r, _ := hex4(raw, i+2)
		if utf16.IsSurrogate(r) {
			lo, _ := hex4(raw, i+8)
			return utf16.DecodeRune(r, lo), i + 12
		}
		return r, i + 6
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	}
	return rune(raw[i+1]), i + 2 // " \ /
}
