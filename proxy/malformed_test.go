package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/translate"
)

// TestMalformedRequestsNeverReachUpstream is the corpus of bad input: each gets
// its 4xx in the client's dialect, and neither the upstream nor the identity
// service hears of it.
func TestMalformedRequestsNeverReachUpstream(t *testing.T) {
	const (
		osc = "/v3.0/OS-CREDENTIAL/credentials"
		ak  = "LOSZM4YRVLKOY9ABCDEF"
		js  = "application/json"
		jsu = "application/json;charset=utf8"
	)
	hash := translate.HashID(ak)
	big := `{"credential":{"description":"` + strings.Repeat("x", 40<<10) + `"}}`
	tok := bt.Admin
	type tc struct {
		name                        string
		side                        translate.Side
		method, path, token, ct, bd string
		status                      int
	}
	O, I, K := translate.SideOscred, translate.SideIBM, translate.SideKeystone
	cases := []tc{
		{"oscred bad json", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":{"status":`, 400},
		{"oscred body array", O, "PUT", osc + "/" + ak, tok, jsu, `[1,2]`, 400},
		{"oscred body string", O, "PUT", osc + "/" + ak, tok, jsu, `"credential"`, 400},
		{"oscred credential string", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":"inactive"}`, 400},
		{"oscred credential null", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":null}`, 400},
		{"oscred no credential", O, "PUT", osc + "/" + ak, tok, jsu, `{"status":"inactive"}`, 400},
		{"oscred empty credential", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":{}}`, 400},
		{"oscred status capitalised", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":{"status":"Inactive"}}`, 400},
		{"oscred status unknown", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":{"status":"disabled"}}`, 400},
		{"oscred status number", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":{"status":0}}`, 400},
		{"oscred status bool", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":{"status":true}}`, 400},
		{"oscred description 256", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":{"description":"` + strings.Repeat("d", 256) + `"}}`, 400},
		{"oscred description object", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":{"description":{}}}`, 400},
		{"oscred empty body", O, "PUT", osc + "/" + ak, tok, jsu, ``, 400},
		{"oscred trailing garbage", O, "PUT", osc + "/" + ak, tok, jsu, `{"credential":{"status":"active"}}}`, 400},
		{"oscred invalid utf8", O, "PUT", osc + "/" + ak, tok, jsu, "{\"credential\":{\"description\":\"\xc3\x28\"}}", 400},
		{"oscred text/plain", O, "PUT", osc + "/" + ak, tok, "text/plain", `{"credential":{"status":"active"}}`, 415},
		{"oscred no content type", O, "PUT", osc + "/" + ak, tok, "", `{"credential":{"status":"active"}}`, 415},
		{"oscred form content type", O, "POST", osc, tok, "application/x-www-form-urlencoded", `user_id=u-alice`, 415},
		{"oscred oversize", O, "PUT", osc + "/" + ak, tok, jsu, big, 413},
		{"oscred missing token", O, "PUT", osc + "/" + ak, "", jsu, `{"credential":{"status":"active"}}`, 401},
		{"oscred token with a space", O, "GET", osc, "tok en", "", "", 401},
		{"oscred token over 16 KiB", O, "GET", osc, strings.Repeat("t", 16<<10+1), "", "", 401},
		{"oscred id too long", O, "PUT", osc + "/" + strings.Repeat("A", 129), tok, jsu, `{"credential":{"status":"active"}}`, 400},
		{"oscred id with dash", O, "DELETE", osc + "/AK-1", tok, "", "", 400},
		{"oscred id with dot", O, "GET", osc + "/AK.json", tok, "", "", 400},
		{"oscred encoded traversal", O, "GET", osc + "/..%2f..%2fadmin", tok, "", "", 400},
		{"oscred encoded slash", O, "DELETE", osc + "/AK%2F1", tok, "", "", 400},
		{"oscred extra segment", O, "DELETE", osc + "/AK/extra", tok, "", "", 404},
		{"oscred create user_id number", O, "POST", osc, tok, jsu, `{"credential":{"user_id":42}}`, 400},
		{"oscred create user_id empty", O, "POST", osc, tok, jsu, `{"credential":{"user_id":""}}`, 400},
		{"oscred list user_id twice", O, "GET", osc + "?user_id=a&user_id=b", tok, "", "", 400},
		{"oscred list user_id empty", O, "GET", osc + "?user_id=", tok, "", "", 400},
		{"oscred list bad escape", O, "GET", osc + "?user_id=%zz", tok, "", "", 400},
		{"oscred wrong method", O, "PATCH", osc + "/" + ak, tok, jsu, `{}`, 405},
		{"oscred post on a key", O, "POST", osc + "/" + ak, tok, jsu, `{}`, 405},
		{"ibm blob number", I, "PATCH", "/credentials/" + ak, tok, js, `{"credential":{"blob":5}}`, 400},
		{"ibm blob string not json", I, "PATCH", "/credentials/" + ak, tok, js, `{"credential":{"blob":"{access:1}"}}`, 400},
		{"ibm blob status unknown", I, "PATCH", "/credentials/" + ak, tok, js, `{"credential":{"blob":{"access":"` + ak + `","status":"enabled"}}}`, 400},
		{"ibm blob access differs from id", I, "PATCH", "/credentials/" + ak, tok, js, `{"credential":{"blob":{"access":"OTHERKEY","status":"Active"}}}`, 400},
		{"ibm blob access with slash", I, "PATCH", "/credentials/" + ak, tok, js, `{"credential":{"blob":{"access":"../x"}}}`, 400},
		{"ibm type not ec2", I, "PATCH", "/credentials/" + ak, tok, js, `{"credential":{"type":"totp","blob":{"status":"Active"}}}`, 400},
		{"ibm project_id number", I, "PATCH", "/credentials/" + ak, tok, js, `{"credential":{"project_id":7,"blob":{"status":"Active"}}}`, 400},
		{"ibm user_id array", I, "PATCH", "/credentials/" + ak, tok, js, `{"credential":{"user_id":["u"],"blob":{"status":"Active"}}}`, 400},
		{"ibm nothing oscred can store", I, "PATCH", "/credentials/" + ak, tok, js, `{"credential":{"blob":{"access":"` + ak + `","secret":"s"},"project_id":"p"}}`, 400},
		{"ibm create with client keys", I, "POST", "/credentials", tok, js, `{"credential":{"user_id":"u-alice","type":"ec2","blob":{"access":"MYKEY","secret":"MYSECRET"}}}`, 400},
		{"ibm create inactive", I, "POST", "/credentials", tok, js, `{"credential":{"user_id":"u-alice","type":"ec2","blob":{"status":"Inactive"}}}`, 400},
		{"ibm xml", I, "PATCH", "/credentials/" + ak, tok, "application/xml", `<credential/>`, 415},
		{"ibm oversize", I, "PATCH", "/credentials/" + ak, tok, js, big, 413},
		{"ibm list type filter", I, "GET", "/credentials?type=totp", tok, "", "", 400},
		{"ibm missing token", I, "DELETE", "/credentials/" + ak, "", "", "", 401},
		{"keystone id not hex", K, "GET", "/v3/credentials/" + ak, tok, "", "", 400},
		{"keystone id upper hex", K, "GET", "/v3/credentials/" + strings.ToUpper(hash), tok, "", "", 400},
		{"keystone id 63 hex", K, "DELETE", "/v3/credentials/" + hash[1:], tok, "", "", 400},
		{"keystone blob hash mismatch", K, "PATCH", "/v3/credentials/" + hash, tok, js, `{"credential":{"blob":"{\"access\":\"OTHERKEY\",\"status\":\"Active\"}"}}`, 400},
		{"keystone blob string of array", K, "PATCH", "/v3/credentials/" + hash, tok, js, `{"credential":{"blob":"[1,2]"}}`, 400},
		{"keystone blob secret too long", K, "PATCH", "/v3/credentials/" + hash, tok, js, `{"credential":{"blob":"{\"access\":\"` + ak + `\",\"secret\":\"` + strings.Repeat("s", 300) + `\"}"}}`, 400},
		{"keystone missing token", K, "GET", "/v3/credentials", "", "", "", 401},
		{"keystone unknown route", K, "GET", "/v3/credentialz", tok, "", "", 404},
		{"keystone wrong method", K, "PUT", "/v3/credentials/" + hash, tok, js, `{}`, 405},
	}
	if len(cases) < 40 {
		t.Fatalf("corpus has %d cases", len(cases))
	}
	e := bt.Start(t, translate.SideOscred, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up, id := e.Upstream.Requests(), e.Identity.Requests()
			r := e.Do(c.method, c.path, c.token, c.ct, c.bd)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			bt.CheckDialect(t, c.side, r)
			if n := e.Upstream.Requests() - up; n != 0 {
				t.Fatalf("upstream received %d requests", n)
			}
			if n := e.Identity.Requests() - id; n != 0 {
				t.Fatalf("identity service received %d requests", n)
			}
		})
	}
	t.Run("oversize chunked body", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", e.URL+osc+"/"+ak, io.MultiReader(strings.NewReader(big)))
		req.Header.Set("X-Auth-Token", tok)
		req.Header.Set("Content-Type", jsu)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 || req.ContentLength != 0 {
			t.Fatalf("status %d (content length %d)", resp.StatusCode, req.ContentLength)
		}
	})
	if n := len(e.Store.Keys(nil)); n != 0 || e.Upstream.Requests() != 0 {
		t.Fatalf("backend changed: %d keys, %d requests", n, e.Upstream.Requests())
	}
}
