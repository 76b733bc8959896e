package translate

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestParseRequestAccepts(t *testing.T) {
	tests := []struct {
		name string
		side Side
		op   Op
		body string
		want Cred
	}{
		{"oscred update both", SideOscred, OpUpdate, `{"credential":{"status":"inactive","description":"d"}}`,
			Cred{Status: StatusInactive, Description: "d", HasDescription: true}},
		{"oscred update empty description clears", SideOscred, OpUpdate, `{"credential":{"description":""}}`,
			Cred{HasDescription: true}},
		{"oscred create", SideOscred, OpCreate, `{"credential":{"user_id":"u1","description":"x"}}`,
			Cred{UserID: "u1", HasUserID: true, Description: "x", HasDescription: true}},
		{"ibm blob object", SideIBM, OpUpdate, `{"credential":{"blob":{"access":"AK1","secret":"s","status":"Inactive"},"project_id":"p","type":"ec2","user_id":"u"}}`,
			Cred{Access: "AK1", Secret: "s", Status: StatusInactive, ProjectID: "p", HasProjectID: true, UserID: "u", HasUserID: true, Type: "ec2", Blob: BlobObject}},
		{"keystone blob string", SideKeystone, OpUpdate, `{"credential":{"blob":"{\"access\":\"AK1\",\"secret\":\"s\",\"status\":\"active\"}"}}`,
			Cred{Access: "AK1", Secret: "s", Status: StatusActive, Blob: BlobString}},
		{"status in any case", SideIBM, OpUpdate, `{"credential":{"blob":{"access":"A","status":"INACTIVE"}}}`,
			Cred{Access: "A", Status: StatusInactive, Blob: BlobObject}},
		{"description 255 runes", SideOscred, OpUpdate, `{"credential":{"description":"` + strings.Repeat("é", 255) + `"}}`,
			Cred{Description: strings.Repeat("é", 255), HasDescription: true}},
		{"unknown fields ignored", SideOscred, OpUpdate, `{"credential":{"status":"active","foo":[1,2]},"bar":1}`,
			Cred{Status: StatusActive}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequest(tc.side, tc.op, []byte(tc.body))
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseRequestRefuses(t *testing.T) {
	long := strings.Repeat("a", 256)
	tests := []struct {
		name string
		side Side
		op   Op
		body string
		code Code
	}{
		{"empty", SideOscred, OpUpdate, ``, CodeBadBody},
		{"not json", SideOscred, OpUpdate, `{"credential":`, CodeBadBody},
		{"array", SideOscred, OpUpdate, `[{"credential":{}}]`, CodeBadBody},
		{"trailing garbage", SideOscred, OpUpdate, `{"credential":{"status":"active"}} x`, CodeBadBody},
		{"invalid utf8", SideOscred, OpUpdate, "{\"credential\":{\"description\":\"\xff\"}}", CodeBadBody},
		{"no credential", SideOscred, OpUpdate, `{"status":"active"}`, CodeBadBody},
		{"credential string", SideOscred, OpUpdate, `{"credential":"x"}`, CodeBadParam},
		{"credential null", SideOscred, OpCreate, `{"credential":null}`, CodeBadParam},
		{"oscred status capitalised", SideOscred, OpUpdate, `{"credential":{"status":"Active"}}`, CodeBadParam},
		{"oscred status number", SideOscred, OpUpdate, `{"credential":{"status":1}}`, CodeBadParam},
		{"oscred nothing to update", SideOscred, OpUpdate, `{"credential":{}}`, CodeBadParam},
		{"description too long", SideOscred, OpUpdate, `{"credential":{"description":"` + long + `"}}`, CodeBadParam},
		{"description control char", SideOscred, OpUpdate, `{"credential":{"description":"a\u0000b"}}`, CodeBadParam},
		{"user_id number", SideOscred, OpCreate, `{"credential":{"user_id":5}}`, CodeBadParam},
		{"user_id empty", SideOscred, OpCreate, `{"credential":{"user_id":""}}`, CodeBadParam},
		{"blob number", SideIBM, OpUpdate, `{"credential":{"blob":5}}`, CodeBadParam},
		{"blob string not json", SideKeystone, OpUpdate, `{"credential":{"blob":"{access"}}`, CodeBadParam},
		{"blob string of array", SideKeystone, OpUpdate, `{"credential":{"blob":"[1]"}}`, CodeBadParam},
		{"blob status unknown", SideIBM, OpUpdate, `{"credential":{"blob":{"access":"A","status":"enabled"}}}`, CodeBadParam},
		{"blob access with slash", SideIBM, OpUpdate, `{"credential":{"blob":{"access":"A/../B"}}}`, CodeBadParam},
		{"blob access number", SideIBM, OpUpdate, `{"credential":{"blob":{"access":7}}}`, CodeBadParam},
		{"blob secret too long", SideIBM, OpCreate, `{"credential":{"blob":{"secret":"` + long + `x"}}}`, CodeBadParam},
		{"type not ec2", SideIBM, OpUpdate, `{"credential":{"type":"totp"}}`, CodeBadParam},
		{"project_id number", SideIBM, OpUpdate, `{"credential":{"project_id":1}}`, CodeBadParam},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRequest(tc.side, tc.op, []byte(tc.body))
			if err == nil {
				t.Fatal("accepted a malformed body")
			}
			if err.Code != tc.code || err.Status != 400 {
				t.Fatalf("got %d/%d %q, want code %d", err.Status, err.Code, err.Message, tc.code)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	hash := HashID("AK")
	tests := []struct {
		side Side
		id   string
		ok   bool
	}{
		{SideOscred, "LOSZM4YRVLKOY9ABCDEF", true},
		{SideOscred, strings.Repeat("A", 128), true},
		{SideOscred, strings.Repeat("A", 129), false},
		{SideOscred, "", false},
		{SideOscred, "a-b", false},
		{SideOscred, "..", false},
		{SideIBM, "181920", true},
		{SideKeystone, hash, true},
		{SideKeystone, strings.ToUpper(hash), false},
		{SideKeystone, hash[:63], false},
		{SideKeystone, "AK", false},
	}
	for _, tc := range tests {
		t.Run(tc.side.String()+"/"+tc.id, func(t *testing.T) {
			if got := ValidID(tc.side, tc.id); got != tc.ok {
				t.Fatalf("ValidID(%q) = %v", tc.id, got)
			}
		})
	}
	// FIPS 180-2's test vector: Keystone ids are plain sha256 in lower hex.
	if got := HashID("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashID(abc) = %s", got)
	}
}

func TestReadCredBothBlobForms(t *testing.T) {
	obj := `{"credential":{"user_id":"u","blob":{"access":"AK","secret":"S","status":"Inactive"},"project_id":"p","type":"ec2","id":"AK"}}`
	str := `{"credential":{"user_id":"u","blob":"{\"access\":\"AK\",\"secret\":\"S\"}","project_id":"p","type":"ec2"}}`
	a, ok := ParseAnswer(SideIBM, []byte(obj))
	if !ok || a.Access != "AK" || a.Secret != "S" || a.Status != StatusInactive || a.Blob != BlobObject {
		t.Fatalf("object blob: %+v", a)
	}
	b, ok := ParseAnswer(SideKeystone, []byte(str))
	if !ok || b.Access != "AK" || b.Status != StatusActive || b.Blob != BlobString {
		t.Fatalf("string blob without status must read as active: %+v", b)
	}
	if _, ok := ParseAnswer(SideIBM, []byte(`{"credentials":[]}`)); ok {
		t.Fatal("a list is not a single answer")
	}
}

func TestOscredClientsNeverSeeSecretsButOnCreate(t *testing.T) {
	c := Cred{Access: "AK", Secret: "SECRET", UserID: "u", Status: StatusActive}
	for _, op := range []Op{OpGet, OpList, OpUpdate} {
		out := string(AppendAnswer(nil, SideOscred, View{Op: op, Secrets: true}, c))
		if strings.Contains(out, "SECRET") {
			t.Fatalf("%s answer leaks the secret: %s", op, out)
		}
	}
	if out := string(AppendAnswer(nil, SideOscred, View{Op: OpCreate}, c)); !strings.Contains(out, `"secret":"SECRET"`) {
		t.Fatalf("create answer lacks the secret: %s", out)
	}
}

func TestStatusCaseMappedBothWays(t *testing.T) {
	up := string(AppendRequest(nil, SideOscred, OpUpdate, Cred{Status: StatusInactive}))
	if up != `{"credential":{"status":"inactive"}}` {
		t.Fatalf("to oscred: %s", up)
	}
	down := string(AppendAnswer(nil, SideIBM, View{Op: OpGet}, Cred{Access: "A", Status: StatusActive}))
	if !strings.Contains(down, `"status":"Active"`) {
		t.Fatalf("to ec2blob: %s", down)
	}
}

func TestErrorShapes(t *testing.T) {
	tests := []struct {
		side       Side
		err        *Error
		wantStatus int
		wantCode   string
	}{
		{SideOscred, ErrForbidden("no"), 403, "IAM.0003"},
		{SideOscred, ErrBadBody("bad"), 400, "IAM.0011"},
		{SideOscred, ErrBadParam("bad"), 400, "IAM.0007"},
		{SideOscred, ErrUnauthorized("who"), 401, "IAM.0001"},
		{SideOscred, ErrNotFound("nf"), 404, "IAM.0004"},
		{SideOscred, &Error{Status: 409, Code: CodeConflict, Message: "c"}, 409, "IAM.0005"},
		{SideOscred, &Error{Status: 429, Code: CodeRateLimited, Message: "r"}, 429, "IAM.0012"},
		{SideOscred, ErrBadGateway("x"), 502, "IAM.0006"},
		{SideOscred, ErrQuota(), 400, "akSkNumExceed"},
		{SideIBM, ErrQuota(), 409, ""},
		{SideKeystone, ErrQuota(), 403, ""},
		{SideKeystone, ErrTooLarge("big"), 413, ""},
	}
	for _, tc := range tests {
		t.Run(tc.side.String()+"/"+tc.err.Message, func(t *testing.T) {
			out := AppendError(nil, tc.side, tc.err)
			var m map[string]any
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatalf("not JSON: %s", out)
			}
			e := m["error"].(map[string]any)
			if int(e["code"].(float64)) != tc.wantStatus || tc.err.StatusFor(tc.side) != tc.wantStatus {
				t.Fatalf("status: %s", out)
			}
			if e["message"] != tc.err.Message || e["title"] == "" {
				t.Fatalf("keystone shape: %s", out)
			}
			if tc.side == SideOscred {
				if m["error_code"] != tc.wantCode || m["error_msg"] != tc.err.Message {
					t.Fatalf("huawei shape: %s", out)
				}
			} else if _, has := m["error_code"]; has {
				t.Fatalf("ec2blob error carries error_code: %s", out)
			}
		})
	}
}

func TestParseUpstreamError(t *testing.T) {
	tests := []struct {
		name       string
		side       Side
		op         Op
		status     int
		body       string
		client     Side
		wantStatus int
		wantCode   Code
	}{
		{"oscred quota to ibm", SideOscred, OpCreate, 400, `{"error_code":"akSkNumExceed","error_msg":"limit"}`, SideIBM, 409, CodeQuota},
		{"oscred quota to keystone", SideOscred, OpCreate, 400, `{"error_code":"akSkNumExceed","error_msg":"limit"}`, SideKeystone, 403, CodeQuota},
		{"oscred quota in the Keystone shape", SideOscred, OpCreate, 400, `{"error":{"code":400,"title":"Bad Request","message":"akSkNumExceed"}}`, SideIBM, 409, CodeQuota},
		{"oscred quota in the Keystone shape, said at length", SideOscred, OpCreate, 400, `{"error":{"code":400,"message":"akSkNumExceed: the user has 2 keys"}}`, SideKeystone, 403, CodeQuota},
		{"ibm 409 on create to oscred", SideIBM, OpCreate, 409, `{"error":{"code":409,"message":"max"}}`, SideOscred, 400, CodeQuota},
		{"keystone quota to oscred", SideKeystone, OpCreate, 403, `{"error":{"code":403,"message":"Unable to create additional credentials, maximum"}}`, SideOscred, 400, CodeQuota},
		{"keystone plain 403 stays", SideKeystone, OpCreate, 403, `{"error":{"code":403,"message":"You are not authorized"}}`, SideOscred, 403, CodeForbidden},
		{"ibm 405 to oscred is 403", SideIBM, OpUpdate, 405, `{"error":{"code":405,"message":"no privileges"}}`, SideOscred, 403, CodeForbidden},
		{"ibm 405 to keystone stays", SideIBM, OpUpdate, 405, `{"error":{"code":405,"message":"no privileges"}}`, SideKeystone, 405, CodeForbidden},
		{"ibm 409 on update is a conflict", SideIBM, OpUpdate, 409, `{}`, SideOscred, 409, CodeConflict},
		{"huawei shape read", SideOscred, OpGet, 404, `{"error_code":"IAM.0004","error_msg":"gone"}`, SideIBM, 404, CodeNotFound},
		{"garbage body keeps status", SideOscred, OpGet, 500, `<html>`, SideIBM, 500, CodeInternal},
		{"success status is garbage", SideOscred, OpGet, 302, ``, SideIBM, 502, CodeBadGateway},
		{"503 kept", SideIBM, OpGet, 503, `{"error":{"message":"down"}}`, SideOscred, 503, CodeUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := ParseUpstreamError(tc.side, tc.op, tc.status, []byte(tc.body))
			if e.Code != tc.wantCode || e.StatusFor(tc.client) != tc.wantStatus {
				t.Fatalf("got code %d status %d (%q)", e.Code, e.StatusFor(tc.client), e.Message)
			}
		})
	}
	if e := ParseUpstreamError(SideOscred, OpGet, 404, []byte(`{"error_code":"IAM.0004","error_msg":"gone"}`)); !strings.Contains(e.Message, "gone") {
		t.Fatalf("upstream message lost: %q", e.Message)
	}
}

func TestAppendStringRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "tab\tnl\ncr\r", "\x00\x01\x1f\x7f", "ünïcödé ✓"} {
		out := appendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil || back != s {
			t.Fatalf("%q -> %s -> %q (%v)", s, out, back, err)
		}
	}
}

func TestNewKeyPair(t *testing.T) {
	ak, sk := NewKeyPair()
	if len(ak) != 20 || len(sk) != 40 {
		t.Fatalf("lengths %d %d", len(ak), len(sk))
	}
	for _, c := range ak {
		if !strings.ContainsRune(akAlphabet, c) {
			t.Fatalf("AK %q has %q", ak, c)
		}
	}
	for _, c := range sk {
		if !strings.ContainsRune(skAlphabet, c) {
			t.Fatalf("SK has %q", c)
		}
	}
	if ak2, _ := NewKeyPair(); ak2 == ak {
		t.Fatal("two key pairs alike")
	}
}

func TestStatusTextAsNetHTTP(t *testing.T) {
	for code := range statusTexts {
		if got, want := StatusText(code), http.StatusText(code); got != want {
			t.Errorf("StatusText(%d) = %q, net/http says %q", code, got, want)
		}
	}
}
