package translate

// Red-team tests for the one-walk parsers (reader.go's reader, scan.go's
// lenient mode), from a review of the first version (which kept every member
// in a list). Each table holds bodies built to make the reader read a body
// otherwise than the gjson walks it replaced (oracle_test.go), or otherwise
// than a second parser (Go's encoding/json) reads it, or to make the lenient
// scan disagree with gjson.ValidBytes. The resource tests at the end bound
// what one upstream answer may cost.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// manyMembers is n members "m0":0 … written as one object's inside.
func manyMembers(n int, val string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `"m%d":%s,`, i, val)
	}
	return b.String()
}

// redteamRequests are request bodies the reader must read as the gjson walk
// did: names escaped in every way, values with tricky escapes, members past the
// inline table, errors at every position, look-alikes before and after.
var redteamRequests = []string{
	// names written with escapes, at every level the reader reads
	`{"\u0063redential":{"\u0075ser_id":"u","d\u0065scription":"d","st\u0061tus":"inactive"}}`,
	`{"credential":{"bl\u006fb":{"\u0061ccess":"AK1","s\u0065cret":"s","st\u0061tus":"Inactive"},"typ\u0065":"ec2"}}`,
	`{"credential":{"bl\u006fb":"{\"\\u0061ccess\":\"AK1\",\"secret\":\"s\"}","type":"ec2"}}`,
	`{"credential":{"blob":"{\"access\":\"AK1\",\"secret\":\"a\\\\\\\"b\"}","type":"ec2"}}`,
	// escaped solidus and backslash runs just before a closing quote
	`{"credential":{"description":"a\/b\\","status":"active"}}`,
	`{"credential":{"description":"\\\\\\\"x\\\\","status":"active"}}`,
	`{"credential":{"user_id":"u\\\"","description":"\"\\\"\\\\"}}`,
	// paired surrogates and multi-byte text in names and values
	`{"credential":{"description":"\ud83d\ude00 é 𝄞","status":"active","x\ud83d\ude00":1}}`,
	"{\"credential\":{\"description\":\"é\",\"\xc3\xa9\":\"x\",\"status\":\"active\"}}",
	// look-alikes: root, credential, blob; before and after the real name
	`{"CREDENTIAL":{},"x":1}`,
	`{"credential":{"status":"active"},"Credential\u0000":1}`,
	`{"credential":{"status":"active"},"x":{"Credential":1}}`,
	`{"x":{"credential":{"status":"active"}}}`,
	`{"credential":{"User_Id":"u","status":"active"}}`,
	`{"credential":{"Blob":{},"type":"ec2"}}`,
	`{"credential":{"\u017Ftatus":"inactive"}}`,
	`{"credential":{"u\u017Fer_id":"v","status":"active"}}`,
	`{"credential":{"blob":{"acce\u017F\u017F":"AK1"},"type":"ec2"}}`,
	// values of every type where a string or an object is wanted
	`{"credential":{"blob":null,"type":"ec2"}}`,
	`{"credential":{"blob":[{"access":"AK1"}],"type":"ec2"}}`,
	`{"credential":{"blob":{"access":"AK1","secret":{"a":"b"}},"type":"ec2"}}`,
	`{"credential":{"blob":"[]","type":"ec2"}}`,
	`{"credential":{"blob":"{\"access\":\"AK1\"}  ","type":"ec2"}}`,
	`{"credential":{"blob":" {\"access\":\"AK1\"}","type":"ec2"}}`,
	`{"credential":{"blob":"{\"access\":\"AK1\",\"x\":{\"access\":\"AK2\"}}","type":"ec2"}}`,
	// a string blob whose scan fails after a member its rules refuse: the
	// scan's refusal is the one answered
	`{"credential":{"blob":"{\"x\":1,\"access\":","type":"ec2"}}`,
	`{"credential":{"blob":"{\"x\":1,\"X\":2}","type":"ec2"}}`,
	`{"credential":{"user_id":-0,"status":true}}`,
	`{"credential":"{\"status\":\"active\"}"}`,
	`{"credential":[{"status":"active"}]}`,
	`{"credential":null}`,
	`{"credential":{}}`,
	`{}`,
	// the first refusal counts: a bad member after many good ones, and past
	// the ten the first version kept on the stack
	`{"credential":{` + manyMembers(12, `"x"`) + `"status":"bogus","user_id":7}}`,
	`{"credential":{` + manyMembers(12, `{"blob":{"access":"AK9"}}`) + `"type":"ec2","blob":{"access":"AK1","secret":"s","status":"ACTIVE","description":"d"}}}`,
	`{"credential":{"type":"ec2","blob":{"access":"AK1","secret":"s","status":"active","description":"d","m":1}}}`,
	`{"credential":{"user_id":"u","type":"ec2","blob":{"access":"AK1"},` + manyMembers(12, `[1,{"a":"b"}]`) + `"project_id":"p"}}`,
	// deep but allowed, and one level too deep
	`{"credential":{"status":"active","x":` + strings.Repeat("[", 30) + strings.Repeat("]", 30) + `}}`,
	`{"credential":{"status":"active","x":` + strings.Repeat(`{"a":`, 31) + "1" + strings.Repeat("}", 31) + `}}`,
	// not JSON, and JSON with something after it
	`{"credential":{"status":"active"}}}`,
	`{"credential":{"status":"active"},}`,
	`{"credential":{"status":"active"}} {}`,
	"\t\r\n {\"credential\":{\"status\":\"active\"}} \n",
	`{"credential":{"status":"active","description":"\ud800"}}`,
	`{"credential":{"status":"active","description":"\udc00\ud800"}}`,
}

// The one-walk ParseRequest reads every body above as the gjson walk did: the
// same refusal and message, and the same Cred when it accepts (a refused
// body's Cred is not used: the proxy answers the refusal).
func TestRedteamRequestAsBefore(t *testing.T) {
	for i, body := range redteamRequests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			for _, s := range sides {
				for _, op := range []Op{OpCreate, OpUpdate} {
					got, gerr := ParseRequest(s, op, []byte(body))
					want, werr := gjsonParseRequest(s, op, []byte(body))
					if (gerr == nil) != (werr == nil) || gerr != nil && (gerr.Status != werr.Status || gerr.Message != werr.Message) {
						t.Fatalf("%s %s %q: refusal %v, before %v", s, op, body, gerr, werr)
					}
					if gerr == nil && got != want {
						t.Fatalf("%s %s %q: read\n%+v\nbefore\n%+v", s, op, body, got, want)
					}
				}
			}
		})
	}
}

// goRequest is a request body as a Go upstream decodes it (encoding/json:
// names matched in any letter case, the last of two wins).
type goRequest struct {
	Credential *struct {
		UserID      *string         `json:"user_id"`
		ProjectID   *string         `json:"project_id"`
		Status      *string         `json:"status"`
		Description *string         `json:"description"`
		Blob        json.RawMessage `json:"blob"`
	} `json:"credential"`
}

type goBlob struct {
	Access      *string `json:"access"`
	Secret      *string `json:"secret"`
	Status      *string `json:"status"`
	Description *string `json:"description"`
}

// Every body the bridge accepts, Go's decoder reads the same way for every
// field policy is decided on: user_id, project_id, status, description, and
// the blob's access and secret.
func TestRedteamRequestAsGoDecodes(t *testing.T) {
	bodies := append([]string{
		`{"credential":{"user_id":"u1","type":"ec2","project_id":"p","blob":{"access":"AK1","secret":"s","status":"inactive","description":"d"}}}`,
		`{"credential":{"user_id":"u1","type":"ec2","blob":"{\"access\":\"AK1\",\"secret\":\"s\",\"status\":\"Inactive\"}"}}`,
		`{"credential":{"user_id":"u\u0131d","description":"d","status":"inactive","user_\u0131d":"v"}}`,
		`{"credential":{"description":"d","status":"inactive","stat\u0130s":"active"}}`,
	}, redteamRequests...)
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for i, body := range bodies {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			for _, s := range sides {
				for _, op := range []Op{OpCreate, OpUpdate} {
					c, err := ParseRequest(s, op, []byte(body))
					if err != nil {
						continue
					}
					var g goRequest
					if err := json.Unmarshal([]byte(body), &g); err != nil || g.Credential == nil {
						t.Fatalf("%s %s %q: the bridge accepts what Go refuses: %v", s, op, body, err)
					}
					gc := g.Credential
					if str(gc.UserID) != c.UserID || gc.UserID != nil != c.HasUserID {
						t.Fatalf("%s %s %q: user_id %q, Go reads %q", s, op, body, c.UserID, str(gc.UserID))
					}
					if s.Dialect == Oscred {
						if str(gc.Description) != c.Description {
							t.Fatalf("%s %s %q: description %q, Go reads %q", s, op, body, c.Description, str(gc.Description))
						}
						if op == OpUpdate && statusOf(str(gc.Status)) != c.Status {
							t.Fatalf("%s %s %q: status %v, Go reads %q", s, op, body, c.Status, str(gc.Status))
						}
						continue
					}
					if str(gc.ProjectID) != c.ProjectID {
						t.Fatalf("%s %s %q: project_id %q, Go reads %q", s, op, body, c.ProjectID, str(gc.ProjectID))
					}
					var b goBlob
					if raw := gc.Blob; len(raw) > 0 {
						if raw[0] == '"' {
							var inner string
							if json.Unmarshal(raw, &inner) != nil {
								t.Fatalf("%q: blob string", body)
							}
							raw = []byte(inner)
						}
						if json.Unmarshal(raw, &b) != nil {
							t.Fatalf("%s %s %q: the bridge reads a blob Go refuses", s, op, body)
						}
					}
					if str(b.Access) != c.Access || str(b.Secret) != c.Secret || str(b.Description) != c.Description ||
						b.Status != nil && ec2Status(gjson.Result{Type: gjson.String, Str: *b.Status}) != c.Status {
						t.Fatalf("%s %s %q: blob read %+v, Go reads %+v", s, op, body, c, b)
					}
				}
			}
		})
	}
}

// redteamAnswers are upstream answers: duplicates (an upstream is not held to
// the client rules), blobs in both forms and many times, JSON at the edges of
// gjson.Valid's syntax, and documents whose top level is not an object.
var redteamAnswers = []string{
	`{"credential":{"access":"A1","status":"active"},"credential":{"access":"A2","status":"inactive"}}`,
	`{"credential":1,"credential":{"access":"A2"}}`,
	`{"credential":[{"access":"A1"}],"credential":{"access":"A2"}}`,
	`{"cred\u0065ntial":{"acc\u0065ss":"A1"},"credential":{"access":"A2"}}`,
	`{"Credential":{"access":"A1"}}`,
	`{"x":{"credential":{"access":"A0"}},"credential":{"access":"A1"}}`,
	`{"credential":{"access":"A1","blob":{"access":"A2","status":"Inactive"},"blob":"{\"access\":\"A3\"}","access":"A4"}}`,
	`{"credential":{"blob":{"access":"A2"},"blob":{"secret":"S3"},"blob":{"access":"A4","description":"d"}}}`,
	`{"credential":{"blob":{` + manyMembers(12, `"x"`) + `"access":"A2"},"blob":{` + manyMembers(11, `{"access":"no"}`) + `"secret":"S3"},"access":"A5"}}`,
	`{"credential":{` + manyMembers(25, `{"blob":{"access":"no"}}`) + `"blob":{"access":"A2","status":"INACTIVE"},"user_id":"u"}}`,
	`{"credential":{"blob":{"access":{"access":"no"},"secret":["no"]},"user_id":7,"status":null}}`,
	`{"credential":{"blob":"not json","access":"A1"}}`,
	`{"credential":{"blob":"{\"access\":\"A2\",","access":"A1"}}`,
	`{"credential":{"access":"\ud800","secret":"\udc00\ud800x","description":"\u0000"}}`,
	`{"credential":{"\ud800":"x","access":"A1"}}`,
	"{\"credential\":{\"access\":\"\xff\xfe\",\"description\":\"\x7f\"}}",
	"{\"credential\":{\"access\":\"A1\",\"\xc3\":1}}",
	`{"credential":{"a":-0,"b":0.5e+10,"c":1E-2,"d":-12.5,"access":"A1"}}`,
	`{"credential":{"a":01,"access":"A1"}}`,
	`{"credential":{"a":1.,"access":"A1"}}`,
	`{"credential":{"a":-,"access":"A1"}}`,
	`{"credential":{"a":1e,"access":"A1"}}`,
	`{"credential":{"a":.5,"access":"A1"}}`,
	`{"credential":{"a":+1,"access":"A1"}}`,
	`{"credential":{"a":NaN,"access":"A1"}}`,
	`{"credential":{"a":tru,"access":"A1"}}`,
	`{"credential":{"a":"\x","access":"A1"}}`,
	`{"credential":{"a":"\u12","access":"A1"}}`,
	`{"credential":{"a":"\u12G4","access":"A1"}}`,
	"{\"credential\":{\"a\":\"\t\",\"access\":\"A1\"}}",
	`{"credential":{"access":"A1",}}`,
	`{"credential":{"access":"A1"}`,
	`{"credential":{"access":"A1"}}}`,
	`{"credential":{"access":"A1"}} x`,
	`{"credential":{"access":"A1"}}` + "\x00",
	"\xef\xbb\xbf" + `{"credential":{"access":"A1"}}`,
	"\f" + `{"credential":{"access":"A1"}}`,
	" \t\r\n" + `{ "credential" : { "access" : "A1" , "blob" : { "secret" : "S" } } }` + " \n",
	// not an object at the top level: gjson.Get would still look inside some
	`"{\"credential"`,
	`"{\"credential\":{\"access\":\"A1\"}}"`,
	`[{"credential":{"access":"A1"}}]`,
	`{"credential":{"access":"A1"}}` + `[]`,
	`null`,
	``,
	` `,
	`{`,
	`{}`,
}

// ParseAnswer reads every answer above as gjson.ValidBytes, gjson.Get and
// ReadCred did, and its scan accepts exactly the objects gjson.ValidBytes
// does.
func TestRedteamAnswerAsBefore(t *testing.T) {
	for i, body := range redteamAnswers {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			for _, s := range sides {
				got, gok := ParseAnswer(s, []byte(body))
				want, wok := gjsonParseAnswer(s, []byte(body))
				if gok != wok || got != want {
					t.Fatalf("%s %q: read (%v)\n%+v\nbefore (%v)\n%+v", s, body, gok, got, wok, want)
				}
			}
			checkScanAnswerValid(t, []byte(body))
		})
	}
}

// checkScanAnswerValid: the lenient scan accepts a document exactly when
// gjson.ValidBytes does, its top level is an object and it nests at most
// maxAnswerDepth levels.
func checkScanAnswerValid(t *testing.T, body []byte) {
	t.Helper()
	got := scanAnswer(body, nil)
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	want := gjson.ValidBytes(body) && len(trimmed) > 0 && trimmed[0] == '{' && nesting(body) <= maxAnswerDepth
	if got != want {
		t.Fatalf("%q: scanAnswer %v, gjson.ValidBytes (an object, at most %d levels) %v", body, got, maxAnswerDepth, want)
	}
}

// nesting is how deep b's arrays and objects nest (outside strings).
func nesting(b []byte) int {
	depth, most, in := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case in:
		case c == '{' || c == '[':
			if depth++; depth > most {
				most = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return most
}

func FuzzScanAnswerAsValid(f *testing.F) {
	seedBodies(f)
	for _, b := range redteamAnswers {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkScanAnswerValid(t, body)
	})
}

// maxAnswer is the upstream client's bound on an answer (upstream.MaxAnswerBytes).
const maxAnswer = 4 << 20

// manyMemberAnswer is a 4 MiB answer whose credential (or blob) has as many
// members as fit: 5 bytes a member.
func manyMemberAnswer(inBlob bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"credential":{`)
	if inBlob {
		b.WriteString(`"blob":{`)
	}
	for b.Len() < maxAnswer-40 {
		b.WriteString(`"":0,`)
	}
	b.WriteString(`"access":"AK1"}}`)
	if inBlob {
		b.WriteString(`}`)
	}
	return b.Bytes()
}

// An upstream answer costs no more heap than its own size. The first version
// kept every member of the credential and of its blob in a slice: one 4 MiB
// answer of short members (838,000) allocated ~122 MiB and took 4× as long as
// the gjson walk, which allocated nothing; the reader keeps nothing a member.
func TestRedteamAnswerManyMembersHeap(t *testing.T) {
	for _, inBlob := range []bool{false, true} {
		t.Run(fmt.Sprintf("in blob %v", inBlob), func(t *testing.T) {
			body := manyMemberAnswer(inBlob)
			want, wok := gjsonParseAnswer(SideIBM, body)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			got, gok := ParseAnswer(SideIBM, body)
			runtime.ReadMemStats(&m1)
			if gok != wok || got != want || got.Access != "AK1" {
				t.Fatalf("read (%v) %+v, before (%v) %+v", gok, got, wok, want)
			}
			if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > uint64(len(body)) {
				t.Errorf("reading a %d-byte answer allocated %d bytes (%.0f× its size; the gjson walk: 0)",
					len(body), alloc, float64(alloc)/float64(len(body)))
			}
		})
	}
}

// nestedAnswer is a 4 MiB answer nesting as deep as it can: kind "[" one
// array a byte, kind "{" one object each 4 bytes ({"": …), closed or not.
func nestedAnswer(kind string, closed bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"credential":{"x":`)
	open, end := "[", "]"
	if kind == "{" {
		open, end = `{"":`, "}"
	}
	n := (maxAnswer - b.Len()) / len(open)
	if closed {
		n = (maxAnswer - b.Len() - 3) / (len(open) + len(end))
	}
	b.WriteString(strings.Repeat(open, n))
	if closed {
		if kind == "{" {
			b.WriteString("0")
		}
		b.WriteString(strings.Repeat(end, n))
		b.WriteString("}}")
	}
	return b.Bytes()
}

// deepLimit is the stack the child process below may grow to: 16 MiB, a
// thirtieth of what the worst 4 MiB answer took the first version (448 MiB).
const deepLimit = 16 << 20

// An upstream's answer nested as deep as 4 MiB allows is refused, as one
// credential and as a list, in a bounded stack. The gjson walk needed
// 128–512 MiB of stack for these (512 MiB for 4 MiB of "[", one doubling short
// of the size at which Go ends the process); the first one-walk version
// needed 448 MiB for 4 MiB of {"":. The reading runs in a child process (this
// test again, told so by the environment) under deepLimit of stack: a
// goroutine stack past its limit is a fatal error no recover sees.
func TestDeepAnswerInBoundedStack(t *testing.T) {
	if os.Getenv("CREDBRIDGE_DEEP_CHILD") == "1" {
		debug.SetMaxStack(deepLimit)
		for _, kind := range []string{"[", "{"} {
			for _, closed := range []bool{false, true} {
				body := nestedAnswer(kind, closed)
				if _, ok := ParseAnswer(SideIBM, body); ok {
					t.Errorf("%s closed %v: ParseAnswer accepted %d levels", kind, closed, nesting(body))
				}
				if ForEachInList(SideIBM, body, func(Cred) {}) {
					t.Errorf("%s closed %v: ForEachInList accepted %d levels", kind, closed, nesting(body))
				}
			}
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeepAnswerInBoundedStack$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "CREDBRIDGE_DEEP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestDeepAnswerInBoundedStack")) {
		t.Fatalf("reading 4 MiB nested answers in %d bytes of stack: %v\n%s", deepLimit, err, tail(out, 2000))
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// The depth bound's edge: maxAnswerDepth levels are read, one more is garbage.
func TestAnswerDepthBound(t *testing.T) {
	nest := func(levels int) []byte { // the root and the credential are two of them
		inner := levels - 2
		return []byte(`{"credential":{"access":"AK1","x":` + strings.Repeat("[", inner) + strings.Repeat("]", inner) + `}}`)
	}
	for _, tc := range []struct {
		levels int
		ok     bool
	}{{maxAnswerDepth - 1, true}, {maxAnswerDepth, true}, {maxAnswerDepth + 1, false}} {
		t.Run(fmt.Sprint(tc.levels), func(t *testing.T) {
			body := nest(tc.levels)
			if n := nesting(body); n != tc.levels {
				t.Fatalf("built %d levels, want %d", n, tc.levels)
			}
			c, ok := ParseAnswer(SideOscred, body)
			if ok != tc.ok || ok && c.Access != "AK1" {
				t.Fatalf("ParseAnswer: ok %v (%+v), want %v", ok, c, tc.ok)
			}
			list := []byte(`{"credentials":[` + string(body[len(`{"credential":`):len(body)-1]) + `]}`)
			if got := ForEachInList(SideOscred, list, func(Cred) {}); got != (nesting(list) <= maxAnswerDepth) {
				t.Fatalf("ForEachInList over %d levels: %v", nesting(list), got)
			}
		})
	}
}
