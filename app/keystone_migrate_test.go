package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/internal/testing/keystone"
	"github.com/credbridge/credbridge/translate"
)

// TestRealKeystoneSync: the real Keystone as the primary (its users from its
// own GET /v3/users, an administrator's token from --primary-token-file), an
// IBM-style reference server as the secondary: keys made on Keystone before
// the bridge are copied whole, and verify agrees.
func TestRealKeystoneSync(t *testing.T) {
	k := keystone.Shared(t)
	dir := emulator.NewDirectory([]emulator.User{
		{ID: k.Alice.ID, Name: "alice", ProjectID: k.Alice.ProjectID, Roles: []string{"member"}},
		{ID: k.Bob.ID, Name: "bob", ProjectID: k.Bob.ProjectID, Roles: []string{"member"}},
		{ID: "u-svc", Name: "svc", Roles: []string{"admin"}, Tokens: []string{"ibm-service-token"}},
	})
	ibm := emulator.NewEC2Blob(dir, false)
	srv := httptest.NewServer(ibm.Handler())
	t.Cleanup(srv.Close)

	// The Keystone is the package's: other tests may have left alice and bob
	// keys, more than the IBM side's quota of two. Start from none.
	for _, u := range []keystone.User{k.Alice, k.Bob} {
		r := bt.Do(t, k.URL, http.MethodGet, "/v3/credentials?user_id="+u.ID, u.Token, "", "")
		var l struct{ Credentials []struct{ ID string } }
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &l) != nil {
			t.Fatalf("listing %s's credentials: %d %s", u.Name, r.Status, r.Body)
		}
		for _, c := range l.Credentials {
			deleteCredential(t, k.URL, c.ID, u.Token)
		}
	}
	want := map[string]string{}
	for i, u := range []keystone.User{k.Alice, k.Bob} {
		ak, sk := fmt.Sprintf("AKKEYSTONESYNC%d", i), fmt.Sprintf("keystone-sync-secret-%d-0123456789abcdefghij", i)
		blob, _ := json.Marshal(map[string]string{"access": ak, "secret": sk})
		body, _ := json.Marshal(map[string]any{"credential": map[string]any{"type": "ec2", "user_id": u.ID, "project_id": u.ProjectID, "blob": string(blob)}})
		r := bt.Do(t, k.URL, http.MethodPost, "/v3/credentials", u.Token, "application/json", string(body))
		if r.Status != http.StatusCreated {
			t.Fatalf("seeding Keystone: %d %s", r.Status, r.Body)
		}
		id, tok := translate.HashID(ak), u.Token
		t.Cleanup(func() { deleteCredential(t, k.URL, id, tok) }) // the shared Keystone outlives the test
		want[ak] = sk
	}
	cfg, err := config.Load("", append(k.BridgeEnv(),
		"CREDBRIDGE_MIGRATION_MODE=shadow", "CREDBRIDGE_MIGRATION_SECONDARY_DIALECT=ec2blob", "CREDBRIDGE_MIGRATION_SECONDARY_FLAVOR=ibm",
		"CREDBRIDGE_MIGRATION_SECONDARY_URL="+srv.URL, "CREDBRIDGE_MIGRATION_SECONDARY_AUTH_TOKEN_FILE="+secretFile(t, "ibm-service-token"),
		"CREDBRIDGE_MIGRATION_JOURNAL_KEY_FILE="+secretFile(t, journalKey), "CREDBRIDGE_MIGRATION_SYNC_JOURNAL="+t.TempDir()+"/sync.db"))
	if err != nil {
		t.Fatal(err)
	}
	o := MigrateOptions{PrimaryTokenFile: secretFile(t, k.Admin.Token)}
	o.Command = "sync"
	s := migrateRun(t, cfg, o)
	if s.code != ExitOK || summary(s.stdout, "created") < len(want) {
		t.Fatalf("sync from the real Keystone: exit %d\n%s%s", s.code, s.stdout, s.stderr)
	}
	for ak, sk := range want {
		if got, ok := ibm.Store.Get(ak); !ok || got.SK != sk {
			t.Fatalf("%s on the secondary: %+v (found %v); want the Keystone blob's secret", ak, got, ok)
		}
	}
	o.Command, o.JSON = "verify", true
	if v := migrateRun(t, cfg, o); v.code != ExitOK {
		t.Fatalf("verify after the sync: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	for _, secret := range append([]string{k.Admin.Token}, want["AKKEYSTONESYNC0"], want["AKKEYSTONESYNC1"]) {
		if strings.Contains(s.stdout+s.stderr, secret) {
			t.Fatal("sync printed a secret or the admin's token")
		}
	}
}

// deleteCredential deletes one Keystone credential on a connection of its own
// (uwsgi closes after each answer: no kept connection to race).
func deleteCredential(t *testing.T, base, id, token string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, base+"/v3/credentials/"+id, nil)
	req.Header.Set("X-Auth-Token", token)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("deleting credential %s: %v", id, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("deleting credential %s: %d", id, resp.StatusCode)
	}
}
