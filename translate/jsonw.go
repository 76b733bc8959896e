package translate

import (
	"strconv"
	"unicode/utf8"
)

// The writers below append JSON to a caller's buffer. New documents on the hot path
// are built this way rather than by repeated sjson.Set calls: each sjson.Set
// re-scans and copies the document, which costs an allocation per field, and
// dialects.md's shapes are fixed, so appending them in order is both simpler and
// allocation-free once the buffer is warm. Edits of an existing document
// (pass-through fix-ups) use sjson.

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string (for other fixed-shape JSON writers,
// such as the access log).
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

// appendString appends s as a JSON string. Input was validated as UTF-8 upstream
// of here; invalid bytes are replaced so output is always valid JSON.
func appendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x7f {
			continue
		}
		if c >= 0x80 {
			// A whole UTF-8 character is copied as it is; an invalid byte
			// (an upstream's message cut short, a hostile header) becomes U+FFFD.
			r, size := decodeRune(s[i:])
			if r != utf8.RuneError || size > 1 {
				i += size - 1
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			start = i + 1
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default: // other control characters and DEL
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func decodeRune[T string | []byte](s T) (rune, int) {
	switch v := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(v)
	case []byte:
		return utf8.DecodeRune(v)
	}
	return utf8.RuneError, 1
}

func appendInt(dst []byte, n int) []byte { return strconv.AppendInt(dst, int64(n), 10) }

// obj writes the members of one JSON object, tracking the commas.
type obj struct {
	b     []byte
	first bool
}

func openObj(dst []byte) obj { return obj{b: append(dst, '{'), first: true} }

func (o *obj) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

// str writes k:v.
func (o *obj) str(k, v string) {
	o.key(k)
	o.b = appendString(o.b, v)
}

// opt writes k:v when v is not empty.
func (o *obj) opt(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

func (o *obj) close() []byte { return append(o.b, '}') }
