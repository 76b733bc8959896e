package translate

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// seedPatch is the PATCH body of the IBM 'Update credential' page
// (shared/seeds/ec2blob-update-credential.txt), as its client sends it.
const seedPatch = "{\n\"credential\": {\n\"blob\": {\"access\": \"181920\",\n\"secret\": \"secretKey\",\n\"status\": \"Inactive\"\n},\n\"project_id\": \"731fc6f265cd486d900f16e84c5cb594\",\n\"type\": \"ec2\",\n\"user_id\": \"bb5476fd12884539b41d5a88f838d773\"\n}\n}"

func TestScanBody(t *testing.T) {
	many := func(dup string) string { // 40 members, then maybe a repeat
		var b strings.Builder
		b.WriteString(`{"credential":{"user_id":"u1","extra":{`)
		for i := 0; i < 40; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"k` + string(rune('A'+i%26)) + string(rune('a'+i/26)) + `":1`)
		}
		b.WriteString(dup + `}}}`)
		return b.String()
	}
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"seed PATCH", seedPatch, true},
		{"every fixture shape", clientRequests[SideKeystone][OpUpdate], true},
		{"empty object", `{}`, true},
		{"values of every kind", `{"a":[1,-0.5,2e10,1E-3,true,false,null,"x",{},[]],"b":{"c":"\u00e9\ud83d\ude00\n"}}`, true},
		{"same name in sibling objects", `{"a":{"x":1},"b":{"x":1}}`, true},
		{"many distinct members", many(""), true},
		{"white space around everything", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", true},

		{"duplicate credential", `{"credential":{"user_id":"me"},"credential":{"user_id":"victim"}}`, false},
		{"escaped duplicate", `{"credential":{"user_id":"me"},"cred\u0065ntial":{"user_id":"victim"}}`, false},
		{"duplicate in letter case", `{"credential":{"user_id":"me","USER_ID":"victim"}}`, false},
		{"duplicate by Unicode folding (long s)", `{"credential":{"status":"active","\u017Ftatus":"inactive"}}`, false},
		{"duplicate by Kelvin sign", `{"k":1,"\u212a":2}`, false},
		{"duplicate deep in an array", `{"a":[{"b":[{"c":1,"c":2}]}]}`, false},
		{"duplicate past the inline table", many(`,"kAa":2`), false},
		{"duplicate past the inline table, other case", many(`,"KAA":2`), false},
		{"escaped slash duplicate", `{"a/b":1,"a\/b":2}`, false},
		{"NUL in a member name", `{"user_id\u0000":"x"}`, false},
		{"lone high surrogate", `{"a":"\ud800"}`, false},
		{"lone low surrogate", `{"a":"\udc00x"}`, false},
		{"high surrogate then a letter escape", `{"a":"\ud800\u0041"}`, false},
		{"too deep", strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33), false},
		{"array too deep", `{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, false},
		{"data after the object", `{"a":1}{"a":2}`, false},
		{"not an object", `["a"]`, false},
		{"byte order mark", "\ufeff{}", false},
		{"raw control character in a string", "{\"a\":\"x\ty\"}", false},
		{"bad escape", `{"a":"\x"}`, false},
		{"leading zero", `{"a":01}`, false},
		{"bare decimal point", `{"a":1.}`, false},
		{"trailing comma", `{"a":1,}`, false},
		{"single quotes", `{'a':1}`, false},
		{"truncated", `{"a":"b`, false},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", false},
		{"empty", ``, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ScanBody([]byte(tc.body))
			if (err == nil) != tc.ok {
				t.Fatalf("ScanBody(%q) = %v, want ok=%v", tc.body, err, tc.ok)
			}
			if err != nil && (err.Status != 400 || err.Code != CodeBadBody) {
				t.Fatalf("error %+v is not a 400 bad body", err)
			}
		})
	}
}

// TestParseRequestRefusesTwoReadings: the scan is part of every parse, the
// Keystone string blob included, and names a Go decoder would match without
// regard to case are refused where they stand alone too.
func TestParseRequestRefusesTwoReadings(t *testing.T) {
	for _, tc := range []struct {
		name string
		side Side
		op   Op
		body string
	}{
		{"two credentials", SideOscred, OpCreate, `{"credential":{"user_id":"me"},"credential":{"user_id":"victim"}}`},
		{"escaped second credential", SideIBM, OpCreate, `{"credential":{"user_id":"me","type":"ec2"},"cred\u0065ntial":{"user_id":"victim","type":"ec2"}}`},
		{"duplicate in a string blob", SideKeystone, OpUpdate, `{"credential":{"blob":"{\"access\":\"AK1\",\"secret\":\"a\",\"secret\":\"b\"}","type":"ec2"}}`},
		{"escaped duplicate in a string blob", SideKeystone, OpCreate, `{"credential":{"user_id":"u1","type":"ec2","blob":"{\"access\":\"AK1\",\"acc\\u0065ss\":\"AK2\",\"secret\":\"s\"}"}}`},
		{"string blob with data after it", SideKeystone, OpCreate, `{"credential":{"user_id":"u1","type":"ec2","blob":"{\"access\":\"AK1\"} {}"}}`},
		{"user id in another case", SideOscred, OpCreate, `{"credential":{"USER_ID":"victim"}}`},
		{"credential in another case beside none", SideOscred, OpCreate, `{"Credential":{"user_id":"victim"},"credential":{}}`},
		{"blob key in another case", SideIBM, OpUpdate, `{"credential":{"blob":{"ACCESS":"AK1"},"type":"ec2"}}`},
		{"project in another case", SideIBM, OpCreate, `{"credential":{"user_id":"u1","Project_Id":"p2","type":"ec2"}}`},
		{"long s status", SideOscred, OpUpdate, `{"credential":{"\u017Ftatus":"inactive","description":"x"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseRequest(tc.side, tc.op, []byte(tc.body)); err == nil || err.Status != 400 {
				t.Fatalf("ParseRequest accepted %s (err %v)", tc.body, err)
			}
		})
	}
}

func BenchmarkScanSeedPatch(b *testing.B) {
	body := []byte(seedPatch)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := ScanBody(body); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzScanBody holds the scan to a plain reference: encoding/json validity,
// then each object's member names decoded in order and compared in any letter
// case, depth counted, names and escapes checked the simple way.
func FuzzScanBody(f *testing.F) {
	for _, s := range []string{seedPatch, `{"a":1,"A":2}`, `{"a":{"b":"\ud83d\ude00"}}`, `{"x\u0000":1}`, `{"a":"\ud800"}`,
		`{"credential":{},"cred\u0065ntial":{}}`, clientRequests[SideKeystone][OpCreate], `{"k":1,"\u212a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := ScanBody(b) == nil
		want := referenceOneReading(b)
		if got != want {
			t.Fatalf("ScanBody(%q) ok=%v, reference says %v", b, got, want)
		}
	})
}

func referenceOneReading(b []byte) bool {
	// encoding/json takes invalid UTF-8 (and reads it as U+FFFD): the scan,
	// like the dialects, does not.
	if !utf8.Valid(b) || !json.Valid(b) || loneSurrogateEscape(b) {
		return false
	}
	d := json.NewDecoder(bytes.NewReader(b))
	first, err := d.Token()
	if err != nil || first != json.Delim('{') {
		return false
	}
	return refObject(d, 1)
}

// refObject reads the rest of an object whose '{' was read.
func refObject(d *json.Decoder, depth int) bool {
	if depth > maxDepth {
		return false
	}
	var names []string
	for d.More() {
		tok, _ := d.Token()
		name := tok.(string)
		for _, r := range name {
			if r < 0x20 || r == 0x7f {
				return false
			}
		}
		for _, n := range names {
			if strings.EqualFold(n, name) {
				return false
			}
		}
		names = append(names, name)
		if !refValue(d, depth) {
			return false
		}
	}
	_, _ = d.Token() // }
	return true
}

func refValue(d *json.Decoder, depth int) bool {
	tok, _ := d.Token()
	switch tok {
	case json.Delim('{'):
		return refObject(d, depth+1)
	case json.Delim('['):
		if depth+1 > maxDepth {
			return false
		}
		for d.More() {
			if !refValue(d, depth+1) {
				return false
			}
		}
		_, _ = d.Token() // ]
	}
	return true
}

// loneSurrogateEscape finds a \u escape of a surrogate that is not half of a
// high-low pair (encoding/json reads such escapes as U+FFFD).
func loneSurrogateEscape(b []byte) bool {
	s := string(b)
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if s[i+1] != 'u' {
			i++
			continue
		}
		r, _ := hex4(s, i+2)
		switch {
		case r >= 0xd800 && r < 0xdc00:
			lo, ok := hex4(s, i+8)
			if i+7 >= len(s) || s[i+6] != '\\' || s[i+7] != 'u' || !ok || lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 11
		case r >= 0xdc00 && r <= 0xdfff:
			return true
		default:
			i += 5
		}
	}
	return false
}

// BenchmarkGJSONValidSeedPatch is the check the scan replaced in ParseRequest,
// for a ratio taken in the same run on a busy machine.
func BenchmarkGJSONValidSeedPatch(b *testing.B) {
	body := []byte(seedPatch)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if !gjson.ValidBytes(body) {
			b.Fatal("invalid")
		}
	}
}
