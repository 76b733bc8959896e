package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func call(t *testing.T, h http.Handler, method, path, token, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json;charset=utf8")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	raw, _ := io.ReadAll(w.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return w.Code, w.Header(), m
}

func TestOscredReference(t *testing.T) {
	h := NewOscred(NewDirectory(DemoUsers())).Handler()
	base := "/v3.0/OS-CREDENTIAL/credentials"
	code, hdr, m := call(t, h, "POST", base, "demo-alice-token", `{"credential":{"user_id":"u-alice"}}`)
	c, _ := m["credential"].(map[string]any)
	if code != 201 || c["secret"] == nil || c["status"] != "active" || hdr.Get("X-Request-Id") == "" {
		t.Fatalf("create: %d %v", code, m)
	}
	ak := c["access"].(string)
	if code, _, m = call(t, h, "GET", base+"/"+ak, "demo-alice-token", ""); code != 200 || m["credential"].(map[string]any)["secret"] != nil {
		t.Fatalf("get shows a secret: %v", m)
	}
	if code, _, _ = call(t, h, "GET", base+"/"+ak, "demo-bob-token", ""); code != 403 {
		t.Fatalf("bob reads alice's key: %d", code)
	}
	if code, _, _ = call(t, h, "POST", base, "demo-bob-token", `{"credential":{"user_id":"u-alice"}}`); code != 403 {
		t.Fatalf("bob creates for alice: %d", code)
	}
	call(t, h, "POST", base, "demo-admin-token", `{"credential":{"user_id":"u-alice"}}`)
	if code, _, m = call(t, h, "POST", base, "demo-admin-token", `{"credential":{"user_id":"u-alice"}}`); code != 400 || m["error_code"] != "akSkNumExceed" {
		t.Fatalf("third key: %d %v", code, m)
	}
	if code, _, _ = call(t, h, "PUT", base+"/"+ak, "demo-alice-token", `{"credential":{"status":"Active"}}`); code != 400 {
		t.Fatalf("capitalised status accepted: %d", code)
	}
	if code, _, _ = call(t, h, "GET", base, "", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
}

func TestEC2BlobReference(t *testing.T) {
	for _, keystone := range []bool{false, true} {
		s := NewEC2Blob(NewDirectory(DemoUsers()), keystone)
		h := s.Handler()
		body := `{"credential":{"user_id":"u-bob","type":"ec2","blob":{}}}`
		if keystone {
			body = `{"credential":{"user_id":"u-bob","type":"ec2","blob":"{\"access\":\"AK1\",\"secret\":\"S1\"}"}}`
		}
		code, hdr, m := call(t, h, "POST", s.prefix, "demo-bob-token", body)
		c, _ := m["credential"].(map[string]any)
		if code != 201 || c["id"] == nil {
			t.Fatalf("keystone=%v create: %d %v", keystone, code, m)
		}
		if _, isString := c["blob"].(string); isString != keystone {
			t.Fatalf("blob form: %v", c["blob"])
		}
		if !keystone && (len(hdr.Get("X-Trans-Id")) != 34 || hdr.Get("X-Timestamp") == "") {
			t.Fatalf("IBM headers: %v", hdr)
		}
		if keystone && c["id"] != s.id("AK1") {
			t.Fatalf("keystone id is not sha256(AK): %v", c["id"])
		}
		if code, _, _ = call(t, h, "GET", s.prefix+"/"+c["id"].(string), "demo-alice-token", ""); code != 403 {
			t.Fatalf("alice reads bob's key: %d", code)
		}
		if keystone {
			body = `{"credential":{"user_id":"u-bob","type":"ec2","blob":"{\"access\":\"AK2\",\"secret\":\"S2\"}"}}`
		}
		call(t, h, "POST", s.prefix, "demo-bob-token", body)
		if keystone {
			body = `{"credential":{"user_id":"u-bob","type":"ec2","blob":"{\"access\":\"AK3\",\"secret\":\"S3\"}"}}`
		}
		want := map[bool]int{false: 409, true: 403}[keystone]
		if code, _, m = call(t, h, "POST", s.prefix, "demo-bob-token", body); code != want {
			t.Fatalf("quota: %d %v", code, m)
		}
	}
}

func TestIdentityReference(t *testing.T) {
	dir := NewDirectory(DemoUsers())
	h := NewIdentity(dir).Handler()
	req := httptest.NewRequest("POST", "/v3/auth/tokens", strings.NewReader(`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"alice","domain":{"name":"demo"},"password":"alice-pass"}}}}}`))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	tok := w.Header().Get("X-Subject-Token")
	if w.Code != 201 || tok == "" {
		t.Fatalf("login: %d", w.Code)
	}
	check := func() int {
		req := httptest.NewRequest("GET", "/v3/auth/tokens", nil)
		req.Header.Set("X-Auth-Token", "demo-admin-token")
		req.Header.Set("X-Subject-Token", tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	if check() != 200 {
		t.Fatal("issued token does not validate")
	}
	dir.Revoke(tok)
	if check() != 404 {
		t.Fatal("revoked token still validates")
	}
}
