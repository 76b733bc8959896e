package translate

// W3C Trace Context (https://www.w3.org/TR/trace-context/): what of a client's
// trace headers may be carried to a backend. Anything else a client sends is
// not forwarded.

// ValidTraceparent reports whether v is a traceparent of version 00 (exactly
// 55 characters) or of a later version the bridge can read as 00 (the first 55
// characters in 00's form, then '-' and more): lower-case hex, ids not all
// zero, version not ff.
func ValidTraceparent(v string) bool {
	if len(v) < 55 || len(v) > 55 && (v[:2] == "00" || v[55] != '-') {
		return false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	if !lowerHex(v[0:2]) || v[:2] == "ff" || !lowerHex(v[3:35]) || !lowerHex(v[36:52]) || !lowerHex(v[53:55]) {
		return false
	}
	return !allZero(v[3:35]) && !allZero(v[36:52]) && len(v) <= 512
}

// ValidTracestate reports whether v is a tracestate header within the limits:
// at most 512 characters, at most 32 list members, each key=value with a key of
// lower-case letters, digits and _-*/ (and one @ for multi-tenant keys) and a
// value of printable ASCII without ',' or '='.
func ValidTracestate(v string) bool {
	if len(v) == 0 || len(v) > 512 {
		return false
	}
	members := 0
	for start := 0; start <= len(v); {
		end := start
		for end < len(v) && v[end] != ',' {
			end++
		}
		m := trimOWS(v[start:end])
		if m != "" {
			if members++; members > 32 || !validStateMember(m) {
				return false
			}
		}
		start = end + 1
	}
	return members > 0
}

func validStateMember(m string) bool {
	eq := -1
	for i := 0; i < len(m); i++ {
		if m[i] == '=' {
			eq = i
			break
		}
	}
	if eq < 1 || eq > 256 || len(m)-eq-1 < 1 || len(m)-eq-1 > 256 {
		return false
	}
	key, val := m[:eq], m[eq+1:]
	at := 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '-', c == '*', c == '/':
		case c == '@' && i > 0 && at == 0:
			at++
		default:
			return false
		}
	}
	for i := 0; i < len(val); i++ {
		if c := val[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return val[len(val)-1] != ' '
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
