package compat

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/credbridge/credbridge/config"
	ks "github.com/credbridge/credbridge/internal/testing/keystone"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/translate"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/credentials"
)

// compat's module path lies under the main module's, so Go's internal rule
// lets it import internal/testing/keystone: one harness serves both modules.

func TestMain(m *testing.M) {
	code := m.Run()
	ks.StopShared()
	os.Exit(code)
}

// realKeystoneBridge runs the bridge (proxy, as bridgetest does) in front of
// the real Keystone (upstream and identity service), passthrough.
func realKeystoneBridge(t *testing.T) (*ks.Keystone, string) {
	t.Helper()
	k := ks.Shared(t)
	cfg, err := config.Load("", k.BridgeEnv())
	if err != nil {
		t.Fatal(err)
	}
	po, err := proxy.OptionsFrom(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(po, proxy.Deps{Validator: policy.NewIdentityClient(cfg.Identity, "", nil)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	return k, srv.URL
}

// gophercloud's credentials API through the bridge to the real Keystone:
// create, get, update, list and delete as the owner; the other user refused.
func TestRealKeystoneGophercloud(t *testing.T) {
	ctx := context.Background()
	k, base := realKeystoneBridge(t)
	c := keystone(t, base, k.Alice.Token)
	ak, sk := translate.NewKeyPair()
	cred, err := credentials.Create(ctx, c, credentials.CreateOpts{Type: "ec2", UserID: k.Alice.ID, ProjectID: k.Alice.ProjectID,
		Blob: `{"access":"` + ak + `","secret":"` + sk + `","description":"gophercloud"}`}).Extract()
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if cred.ID != translate.HashID(ak) || cred.UserID != k.Alice.ID {
		t.Fatalf("create answered %+v", cred)
	}
	got, err := credentials.Get(ctx, c, cred.ID).Extract()
	if err != nil || blobOf(t, got).Access != ak {
		t.Fatalf("get: %+v %v", got, err)
	}
	nb := blobOf(t, got)
	nb.Secret, nb.Status, nb.Description = sk, "Inactive", "rotated"
	raw, _ := json.Marshal(nb)
	upd, err := credentials.Update(ctx, c, cred.ID, credentials.UpdateOpts{Blob: string(raw)}).Extract()
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if ub := blobOf(t, upd); ub.Description != "rotated" || !strings.EqualFold(ub.Status, "inactive") {
		t.Fatalf("update answered blob %+v", ub)
	}
	pages, err := credentials.List(c, credentials.ListOpts{UserID: k.Alice.ID}).AllPages(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	all, _ := credentials.ExtractCredentials(pages)
	if !slices.ContainsFunc(all, func(l credentials.Credential) bool { return l.ID == cred.ID }) {
		t.Fatalf("list %+v misses %s", all, cred.ID)
	}
	bob := keystone(t, base, k.Bob.Token)
	if _, err := credentials.Get(ctx, bob, cred.ID).Extract(); !gophercloud.ResponseCodeIs(err, 403) && !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("bob's get: want 403 or 404, got %v", err)
	}
	if err := credentials.Delete(ctx, bob, cred.ID).ExtractErr(); !gophercloud.ResponseCodeIs(err, 403) && !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("bob's delete: want 403 or 404, got %v", err)
	}
	if err := credentials.Delete(ctx, c, cred.ID).ExtractErr(); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if st, err := k.AdminStatus("/v3/credentials/" + cred.ID); err != nil || st != 404 {
		t.Fatalf("Keystone answers the admin %d, %v for the deleted key", st, err)
	}
}

// `openstack credential ...` through the bridge to the real Keystone: the
// CLI resolves users and projects with the bridge's identity look-ups.
func TestRealKeystoneOpenstackClient(t *testing.T) {
	k, base := realKeystoneBridge(t)
	run := func(token string, args ...string) string {
		t.Helper()
		out, errOut, err := osc(t, base, token, args...)
		if err != nil {
			t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}
	ak, sk := translate.NewKeyPair()
	var created struct {
		ID, Blob string
		UserID   string `json:"user_id"`
	}
	oscJSON(t, run(k.Alice.Token, "credential", "create", "--type", "ec2", "--project", k.Alice.ProjectID, k.Alice.ID,
		`{"access":"`+ak+`","secret":"`+sk+`","description":"osc"}`, "-f", "json"), &created)
	if created.ID != translate.HashID(ak) || created.UserID != k.Alice.ID {
		t.Fatalf("create printed %+v", created)
	}
	var listed []struct {
		ID string `json:"ID"`
	}
	oscJSON(t, run(k.Alice.Token, "credential", "list", "--user", k.Alice.ID, "-f", "json"), &listed)
	if !slices.ContainsFunc(listed, func(l struct {
		ID string `json:"ID"`
	}) bool {
		return l.ID == created.ID
	}) {
		t.Fatalf("list printed %+v", listed)
	}
	var shown struct{ Blob string }
	oscJSON(t, run(k.Alice.Token, "credential", "show", created.ID, "-f", "json"), &shown)
	if !strings.Contains(shown.Blob, ak) {
		t.Fatalf("show printed blob %q", shown.Blob)
	}
	// `credential set` always sends type and user_id, which this Keystone's
	// PATCH refuses (CVE-2026-90460's fix): a Keystone client's update goes
	// through as written, so the bridge answers as Keystone itself does.
	set := []string{"credential", "set", "--type", "ec2", "--user", k.Alice.ID,
		"--data", `{"access":"` + ak + `","secret":"` + sk + `","status":"Inactive"}`, created.ID}
	_, viaBridge, errBridge := osc(t, base, k.Alice.Token, set...)
	_, direct, errDirect := osc(t, k.URL, k.Alice.Token, set...)
	if errBridge == nil || errDirect == nil || !strings.Contains(viaBridge, "HTTP 400") || !strings.Contains(direct, "HTTP 400") ||
		!strings.Contains(viaBridge, "'type', 'user_id' were unexpected") {
		t.Fatalf("credential set: through the bridge %v %q, straight to Keystone %v %q", errBridge, viaBridge, errDirect, direct)
	}
	if _, errOut, err := osc(t, base, k.Bob.Token, "credential", "delete", created.ID); err == nil || !strings.Contains(errOut, "HTTP 403") && !strings.Contains(errOut, "HTTP 404") {
		t.Fatalf("bob's delete: err %v, stderr %q", err, errOut)
	}
	run(k.Alice.Token, "credential", "delete", created.ID)
	if st, err := k.AdminStatus("/v3/credentials/" + created.ID); err != nil || st != 404 {
		t.Fatalf("Keystone answers the admin %d, %v for the deleted key", st, err)
	}
}
