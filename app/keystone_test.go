package app

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/credbridge/credbridge/config"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/internal/testing/keystone"
	"github.com/credbridge/credbridge/internal/testing/mixed"
	"github.com/credbridge/credbridge/translate"
)

func TestMain(m *testing.M) {
	code := m.Run()
	keystone.StopShared() // started by the first test that needs it
	os.Exit(code)
}

// keystoneBridge runs the whole bridge in front of the real Keystone: the
// upstream (ec2blob, flavor keystone) and the identity service are both it,
// and the caller's own token goes upstream (passthrough).
func keystoneBridge(t *testing.T) (*keystone.Keystone, string) {
	t.Helper()
	k := keystone.Shared(t)
	cfg, err := config.Load("", k.BridgeEnv())
	if err != nil {
		t.Fatal(err)
	}
	logs := &bt.SyncBuffer{}
	t.Cleanup(func() { // runs after the bridge's shutdown, registered below
		if t.Failed() {
			t.Logf("bridge log:\n%s", logs.String())
		}
	})
	rt := startRuntime(t, cfg, Options{Log: slog.New(slog.NewJSONHandler(logs, nil)), AccessLog: io.Discard})
	return k, "http://" + rt.Addr()
}

// The harness's Keystone is the one the issue met: uwsgi answers without
// Connection: close and closes anyway, and a user validates its own token.
func TestRealKeystoneHarness(t *testing.T) {
	k := keystone.Shared(t)
	t.Logf("Keystone up in %s (%s)", k.Started.Round(time.Millisecond), strings.Join(k.Phases, ", "))
	for _, u := range []keystone.User{k.Alice, k.Bob} {
		r := bt.Do(t, k.URL, "GET", "/v3/auth/tokens?nocatalog=1", u.Token, "", "", "X-Subject-Token", u.Token)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"`+u.ProjectID+`"`) || !strings.Contains(string(r.Body), `"member"`) {
			t.Fatalf("%s validating its own token: %d %s", u.Name, r.Status, r.Body)
		}
	}
	if k.Alice.ID == k.Bob.ID || k.Alice.ProjectID == k.Bob.ProjectID {
		t.Fatal("Alice and Bob share a user or a project")
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(k.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /v3 HTTP/1.1\r\nHost: keystone\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body) // ends only because the server closes
	if err != nil || resp.StatusCode != 200 || len(rest) == 0 {
		t.Fatalf("GET /v3: %d, %d bytes, %v", resp.StatusCode, len(rest), err)
	}
	if resp.Header.Get("Connection") != "" {
		t.Fatalf("the server announced its close (Connection %q): not the uwsgi the issue met", resp.Header.Get("Connection"))
	}
}

var clientSides = []translate.Side{translate.SideOscred, translate.SideIBM, translate.SideKeystone}

// Every operation from each client dialect through the bridge to the real
// Keystone: the owner creates, lists, gets, updates and deletes; the other
// user can neither read, change nor delete the key.
func TestRealKeystoneEveryOperation(t *testing.T) {
	k, base := keystoneBridge(t)
	for _, side := range clientSides {
		t.Run(side.String(), func(t *testing.T) {
			alice, bob := k.Alice, k.Bob
			r := bt.Do(t, base, "POST", bt.Base(side), alice.Token, bt.CType(side), mixed.CreateBody(side, translate.SideKeystone, alice.ID, alice.ProjectID, "ci"))
			if r.Status != 201 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			bt.CheckDialect(t, side, r)
			ak, sk, _ := mixed.KeyOf(side, r.Body)
			if ak == "" || sk == "" {
				t.Fatalf("create answered no pair: %s", r.Body)
			}
			path := bt.KeyPath(side, ak)
			if r = bt.Do(t, base, "GET", bt.Base(side), alice.Token, "", ""); r.Status != 200 || !strings.Contains(string(r.Body), ak) {
				t.Fatalf("list: %d %s", r.Status, r.Body)
			}
			if r = bt.Do(t, base, "GET", path, alice.Token, "", ""); r.Status != 200 {
				t.Fatalf("get: %d %s", r.Status, r.Body)
			}
			if _, _, st := mixed.KeyOf(side, r.Body); st != "active" {
				t.Fatalf("new key's status %q", st)
			}
			for _, bad := range []struct{ method, body string }{{"GET", ""}, {bt.UpdateMethod(side), mixed.UpdateBody(side, ak, sk, bob.ID, "inactive", "stolen")}, {"DELETE", ""}} {
				r = bt.Do(t, base, bad.method, path, bob.Token, bt.CType(side), bad.body)
				if r.Status != 403 && r.Status != 404 {
					t.Fatalf("non-owner %s: %d %s", bad.method, r.Status, r.Body)
				}
			}
			if r = bt.Do(t, base, "GET", bt.Base(side), bob.Token, "", ""); r.Status != 200 || strings.Contains(string(r.Body), ak) {
				t.Fatalf("non-owner's list: %d %s", r.Status, r.Body)
			}
			if r = bt.Do(t, base, "GET", path, alice.Token, "", ""); r.Status != 200 {
				t.Fatalf("get after the non-owner's tries: %d %s", r.Status, r.Body)
			}
			if _, _, st := mixed.KeyOf(side, r.Body); st != "active" {
				t.Fatalf("the non-owner's update took: status %q", st)
			}
			if r = bt.Do(t, base, bt.UpdateMethod(side), path, alice.Token, bt.CType(side), mixed.UpdateBody(side, ak, sk, alice.ID, "inactive", "rotated")); r.Status != 200 {
				t.Fatalf("update: %d %s", r.Status, r.Body)
			}
			if r = bt.Do(t, base, "GET", path, alice.Token, "", ""); r.Status != 200 {
				t.Fatalf("get after update: %d %s", r.Status, r.Body)
			}
			if _, _, st := mixed.KeyOf(side, r.Body); st != "inactive" {
				t.Fatalf("status after update %q: %s", st, r.Body)
			}
			if r = bt.Do(t, base, "DELETE", path, alice.Token, "", ""); r.Status != 204 {
				t.Fatalf("delete: %d %s", r.Status, r.Body)
			}
			// Keystone's policy cannot match a credential that is gone: 403 to
			// its former owner; the admin sees that it is gone.
			if r = bt.Do(t, base, "GET", path, alice.Token, "", ""); r.Status != 404 && r.Status != 403 {
				t.Fatalf("get after delete: %d %s", r.Status, r.Body)
			}
			if st, err := k.AdminStatus(bt.KeyPath(translate.SideKeystone, ak)); err != nil || st != 404 {
				t.Fatalf("Keystone answers the admin %d, %v for the deleted key", st, err)
			}
		})
	}
}

// 1,000 mixed operations, a third of them updates, from all three client
// dialects through the bridge to the real Keystone: not one may fail.
func TestRealKeystoneMixed(t *testing.T) {
	k, base := keystoneBridge(t)
	var callers []mixed.Caller
	for _, u := range []keystone.User{k.Alice, k.Bob, k.Alice, k.Bob} {
		callers = append(callers, mixed.Caller{Token: u.Token, UserID: u.ID, ProjectID: u.ProjectID})
	}
	res := mixed.Run(base, translate.SideKeystone, callers, 1000)
	t.Logf("against the real Keystone: %s", res)
	if res.Failures != 0 || res.Ops != 1000 || res.Updates < 333 {
		t.Fatalf("%s\nfirst failures: %q", res, res.Failed)
	}
}
