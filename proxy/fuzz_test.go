package proxy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/translate"
)

// FuzzHandler throws arbitrary requests at the bridge in front of a healthy
// reference upstream: each is translated or refused with a 4xx, in the
// dialect its path names, as JSON; never a 5xx, never a panic.
func FuzzHandler(f *testing.F) {
	ak := "LOSZM4YRVLKOY9ABCDEF"
	seeds := []struct{ method, path, ct, body string }{
		{"PUT", "/v3.0/OS-CREDENTIAL/credentials/" + ak, "application/json;charset=utf8", `{"credential":{"status":"inactive"}}`},
		{"PATCH", "/credentials/" + ak, "application/json", `{"credential":{"blob":{"access":"` + ak + `","status":"Inactive"}}}`},
		{"PATCH", "/v3/credentials/" + translate.HashID(ak), "application/json", `{"credential":{"blob":"{\"access\":\"` + ak + `\"}"}}`},
		{"POST", "/credentials", "application/json", `{"credential":{"user_id":"u-alice","blob":{"description":"x"}}}`},
		{"POST", "/v3.0/OS-CREDENTIAL/credentials", "application/json", `{"credential":{"user_id":"u-bob"}}`},
		{"GET", "/v3/credentials?user_id=u-alice", "", ""},
		{"DELETE", "/credentials/" + ak, "", ""},
		{"GET", "/v3.0/OS-CREDENTIAL/credentials/%2e%2e", "", ""},
		{"GET", "/v3/users/u-alice", "", ""},
		{"GET", "/v3/users?name=alice&domain_id=d-demo", "", ""},
		{"GET", "/v3/projects/p-alice", "", ""},
		{"GET", "/v3/projects?name=%zz", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.ct, s.body)
	}
	e := bt.Start(f, translate.SideOscred, nil)
	e.Store.Put(seedKey(ak, "u-alice"))
	methods := map[string]bool{"GET": true, "PUT": true, "PATCH": true, "POST": true, "DELETE": true}
	h := e.Proxy.Handler()
	f.Fuzz(func(t *testing.T, method, path, ct, body string) {
		if !methods[method] || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") {
			return // not an HTTP request a server would parse
		}
		req, err := http.NewRequest(method, "http://bridge"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		if ct != "" {
			if strings.ContainsAny(ct, "\r\n\x00") {
				return
			}
			req.Header.Set("Content-Type", ct)
		}
		req.Header.Set("X-Auth-Token", bt.Admin)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != 501 {
			t.Fatalf("%s %s -> %d %s", method, path, w.Code, w.Body)
		}
		if w.Code != http.StatusNoContent && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s -> %d non-JSON %q", method, path, w.Code, w.Body)
		}
		if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") && w.Code != http.StatusNoContent {
			t.Fatalf("content type %q", w.Header().Get("Content-Type"))
		}
	})
}
