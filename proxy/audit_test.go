package proxy_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/credbridge/credbridge/audit"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/translate"
)

// TestAuditTrail drives each key operation and each kind of refusal through
// the bridge and reads the trail back: one event each, who did what to which
// key and how it ended, and never a token or a secret.
func TestAuditTrail(t *testing.T) {
	var out bt.SyncBuffer
	w := audit.NewWriter(&out, time.Hour) // flushed by Close below, not by time
	e := bt.Start(t, translate.SideIBM, nil, proxy.Deps{Audit: w})
	created := e.Do("POST", "/credentials", bt.Alice, "application/json", `{"credential":{"user_id":"u-alice","type":"ec2"}}`)
	if created.Status != 201 {
		t.Fatalf("create: %d %s", created.Status, created.Body)
	}
	ak := bt.Blob(created.Cred())["access"].(string)
	secret := bt.Blob(created.Cred())["secret"].(string)
	path := "/credentials/" + ak
	steps := []struct {
		method, path, token, body string
		want                      map[string]string
	}{
		{"GET", "/credentials", bt.Alice, "", map[string]string{"action": "list", "outcome": "success", "target_owner": "u-alice"}},
		{"GET", path, bt.Alice, "", map[string]string{"action": "get", "outcome": "success", "target_access_key": ak, "target_owner": "u-alice"}},
		{"PATCH", path, bt.Alice, `{"credential":{"blob":{"access":"` + ak + `","secret":"` + secret + `","status":"Inactive"},"type":"ec2"}}`,
			map[string]string{"action": "update", "outcome": "success", "target_access_key": ak}},
		{"DELETE", path, bt.Bob, "", map[string]string{"action": "delete", "outcome": "denied", "reason_status": "403", "reason_code": "forbidden", "initiator_user_id": "u-bob", "target_owner": "u-alice"}},
		{"PATCH", path, bt.Alice, `{"credential":{"user_id":"u-alice","user_id":"u-bob"}}`, map[string]string{"action": "update", "outcome": "failure", "reason_status": "400", "reason_code": "bad_body"}},
		{"GET", path, "not-a-valid-token", "", map[string]string{"action": "get", "outcome": "denied", "reason_status": "401"}},
		{"DELETE", path, bt.Alice, "", map[string]string{"action": "delete", "outcome": "success", "target_access_key": ak, "target_owner": "u-alice"}},
		{"POST", "/v3.0/OS-CREDENTIAL/securitytokens", bt.Alice, `{}`, map[string]string{"action": "temporary_keys", "outcome": "failure", "reason_status": "501", "client_dialect": "oscred"}},
		{"GET", "/nowhere", bt.Alice, "", nil}, // no key, no event
	}
	for _, s := range steps {
		ct := ""
		if s.body != "" {
			ct = "application/json"
		}
		e.Do(s.method, s.path, s.token, ct, s.body)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(steps) { // the create, and every step but the unknown route
		t.Fatalf("%d events for %d audited requests:\n%s", len(lines), len(steps), out.String())
	}
	for _, bad := range []string{bt.Alice, bt.Bob, secret, "not-a-valid-token"} {
		if strings.Contains(out.String(), bad) {
			t.Fatalf("the trail holds %q", bad)
		}
	}
	for i, s := range append(steps[:0:0], steps[:len(steps)-1]...) {
		var ev map[string]any
		if err := json.Unmarshal([]byte(lines[i+1]), &ev); err != nil {
			t.Fatalf("event %d is not JSON: %s", i+1, lines[i+1])
		}
		if s.want["client_dialect"] == "" {
			s.want["client_dialect"] = "ec2blob-ibm"
		}
		if ev["upstream"] != "ec2blob-ibm" || ev["request_id"] == nil || ev["initiator_address"] != "127.0.0.1" {
			t.Fatalf("event %d: %v", i+1, ev)
		}
		for k, want := range s.want {
			if got := strings.Trim(jsonText(ev[k]), `"`); got != want {
				t.Errorf("%s %s: %s = %q, want %q (%v)", s.method, s.path, k, got, want, ev)
			}
		}
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
