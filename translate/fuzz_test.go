package translate

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// Every parser gets a fuzz target: no panic, and whatever is accepted renders
// to valid JSON in every dialect.

func seedBodies(f *testing.F) {
	for _, m := range clientRequests {
		for _, b := range m {
			f.Add([]byte(b))
		}
	}
	for _, m := range serverAnswers {
		for _, b := range m {
			f.Add([]byte(b))
		}
	}
	f.Add([]byte(`{"credential":{"blob":"{\"access\":\"A\",\"status\":\"INACTIVE\"}"}}`))
	f.Add([]byte(`{"credential":{"description":"\u00e9\ud83d\ude00"}}`))
	f.Add([]byte(`{"error_code":"akSkNumExceed","error_msg":"x"}`))
	f.Add([]byte("{\"credential\":{\"description\":\"\xff\"}}"))
}

func FuzzParseRequest(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, s := range sides {
			for _, op := range []Op{OpCreate, OpUpdate} {
				c, err := ParseRequest(s, op, body)
				if err != nil {
					if err.Status != 400 {
						t.Fatalf("refusal with status %d", err.Status)
					}
					continue
				}
				for _, up := range sides {
					if out := AppendRequest(nil, up, op, c); !json.Valid(out) {
						t.Fatalf("invalid JSON toward %s: %s", up, out)
					}
				}
			}
		}
	})
}

func FuzzParseAnswer(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, up := range sides {
			c, ok := ParseAnswer(up, body)
			for _, client := range sides {
				v := View{Op: OpGet, Secrets: true, ProjectID: "p", Links: "http://h/v3/credentials"}
				if ok {
					if out := AppendAnswer(nil, client, v, c); !json.Valid(out) {
						t.Fatalf("invalid JSON for %s: %s", client, out)
					}
				}
				out := AppendListOpen(nil, client, v)
				n := 0
				ForEachInList(up, body, func(c Cred) {
					if n > 0 {
						out = append(out, ',')
					}
					n++
					out = AppendCred(out, client, v, c)
				})
				if out = AppendListClose(out); !json.Valid(out) {
					t.Fatalf("invalid list JSON for %s: %s", client, out)
				}
			}
		}
	})
}

func FuzzParseUpstreamError(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, up := range sides {
			for _, status := range []int{200, 400, 403, 405, 409, 500, 503} {
				e := ParseUpstreamError(up, OpCreate, status, body)
				if e.Status < 400 || e.Status > 599 {
					t.Fatalf("error with status %d", e.Status)
				}
				for _, client := range sides {
					if out := AppendError(nil, client, e); !json.Valid(out) {
						t.Fatalf("invalid error JSON: %s", out)
					}
				}
			}
		}
	})
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{"AK", "", "a/b", HashID("x"), "..", "%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		for _, s := range sides {
			if ValidID(s, id) {
				for i := 0; i < len(id); i++ {
					c := id[i]
					if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
						t.Fatalf("accepted %q with byte %q", id, c)
					}
				}
			}
		}
	})
}

// FuzzValidText holds the one-pass validText to its definition written the plain
// way: min bytes, max runes, valid UTF-8, no ASCII control characters.
func FuzzValidText(f *testing.F) {
	for _, s := range []string{"", "a", "rotated", "é😀", "\xff", "a\x00", "\x7f", "\xed\xa0\x80", "\uFFFD", strings.Repeat("é", 300)} {
		f.Add(s, 1, 255)
	}
	f.Fuzz(func(t *testing.T, v string, min, max int) {
		want := len(v) >= min && utf8.ValidString(v) && utf8.RuneCountInString(v) <= max &&
			!strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f })
		if got := validText(v, min, max); got != want {
			t.Fatalf("validText(%q, %d, %d) = %v, want %v", v, min, max, got, want)
		}
	})
}

// The one-walk parsers read every body as the gjson walks they replaced
// (oracle_test.go): the same Cred, the same refusal.
func FuzzParseRequestAsBefore(f *testing.F) {
	seedBodies(f)
	seedLookalikes(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, s := range sides {
			for _, op := range []Op{OpCreate, OpUpdate} {
				got, gerr := ParseRequest(s, op, body)
				want, werr := gjsonParseRequest(s, op, body)
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

func FuzzParseAnswerAsBefore(f *testing.F) {
	seedBodies(f)
	seedLookalikes(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		deep := nesting(body) > maxAnswerDepth // garbage now; the walks read it
		for _, s := range sides {
			got, gok := ParseAnswer(s, body)
			want, wok := gjsonParseAnswer(s, body)
			if deep {
				want, wok = Cred{}, false
			}
			if gok != wok || got != want {
				t.Fatalf("%s %q: read (%v)\n%+v\nbefore (%v)\n%+v", s, body, gok, got, wok, want)
			}
		}
	})
}

// seedLookalikes: bodies the reader must read as the walks did — names
// escaped, repeated (answers), look-alike, blobs twice, values of every type.
func seedLookalikes(f *testing.F) {
	for _, b := range []string{
		`{"Credential":{"status":"active"}}`,
		`{"x":1,"CREDENTIAL":{},"credential":{"status":"active"}}`,
		`{"cred\u0065ntial":{"st\u0061tus":"active","description":"a\nb"}}`,
		`{"credential":{"status":"active"},"credential":{"status":"inactive"}}`,
		`{"credential":{"user_id":"a","user_id":"b","blob":{"access":"A"},"blob":{"access":"B","secret":"s"}}}`,
		`{"credential":{"blob":{"access":"A"},"blob":"{\"access\":\"C\"}"}}`,
		`{"credential":{"blob":"{\"access\":\"AK\",\"secret\":\"\\ud800\"}"}}`,
		`{"credential":{"description":"\ud800","status":1,"user_id":null,"type":["ec2"],"blob":[]}}`,
		`{"credential":{"status":"Active","User_ID":"u","blob":{"Access":"A"}}}`,
		`{"credential":{"a":{"credential":{"status":"x"}},"blob":{"access":{"x":"y"}}}}`,
		"{\"credential\":{\"description\":\"\xc3\"}}",
		`  {"credential" : { "status" : "inactive" } }  `,
		`{"credential":{}} x`,
		`{"credential":1e5}`,
		`[{"credential":{}}]`,
	} {
		f.Add([]byte(b))
	}
	// Many members (the first version kept ten on the stack, the rest in a list).
	var many, blob strings.Builder
	for i := range 14 {
		fmt.Fprintf(&many, `"m%d":%d,`, i, i)
		fmt.Fprintf(&blob, `"b%d":"%d",`, i, i)
	}
	f.Add([]byte(`{"credential":{` + many.String() + `"status":"inactive","user_id":"u"}}`))
	f.Add([]byte(`{"credential":{` + many.String() + `"blob":{` + blob.String() + `"access":"A","secret":"s"}}}`))
}
