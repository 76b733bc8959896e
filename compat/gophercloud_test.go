package compat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/translate"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/credentials"
)

// keystone is an identity v3 service client as a gophercloud user builds one
// around a token they already hold; the bridge stands where Keystone was.
func keystone(t *testing.T, base, token string) *gophercloud.ServiceClient {
	t.Helper()
	pc, err := openstack.NewClient(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	pc.SetToken(token)
	sc, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

type ec2Blob struct {
	Access      string `json:"access"`
	Secret      string `json:"secret,omitempty"`
	Status      string `json:"status,omitempty"`
	Description string `json:"description,omitempty"`
}

func blobOf(t *testing.T, c *credentials.Credential) ec2Blob {
	t.Helper()
	var b ec2Blob
	if err := json.Unmarshal([]byte(c.Blob), &b); err != nil {
		t.Fatalf("blob %q is not the JSON string Keystone sends: %v", c.Blob, err)
	}
	return b
}

func TestGophercloudCredentials(t *testing.T) {
	ctx := context.Background()
	for _, up := range upstreams {
		t.Run("upstream "+up.String(), func(t *testing.T) {
			e := bt.Start(t, up, nil)
			c := keystone(t, e.URL, bt.Alice)

			// Keystone wants the key pair from the client; the others make it.
			blob := `{"description":"ci key"}`
			if up == translate.SideKeystone {
				ak, sk := translate.NewKeyPair()
				blob = `{"access":"` + ak + `","secret":"` + sk + `","description":"ci key"}`
			}
			cred, err := credentials.Create(ctx, c, credentials.CreateOpts{Type: "ec2", UserID: "u-alice", ProjectID: "p-alice", Blob: blob}).Extract()
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			b := blobOf(t, cred)
			sum := sha256.Sum256([]byte(b.Access))
			if b.Access == "" || b.Secret == "" || cred.ID != hex.EncodeToString(sum[:]) || cred.Type != "ec2" || cred.UserID != "u-alice" {
				t.Fatalf("create answered %+v (blob %+v)", cred, b)
			}

			got, err := credentials.Get(ctx, c, cred.ID).Extract()
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if gb := blobOf(t, got); got.ID != cred.ID || gb.Access != b.Access || gb.Description != "ci key" {
				t.Fatalf("get answered %+v", got)
			}

			// Read-modify-write of the blob, secret included, as Keystone users do.
			nb := b
			nb.Status, nb.Description = "Inactive", "rotated"
			raw, _ := json.Marshal(nb)
			res := credentials.Update(ctx, c, cred.ID, credentials.UpdateOpts{Blob: string(raw)})
			upd, err := res.Extract()
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if ub := blobOf(t, upd); ub.Access != b.Access || ub.Description != "rotated" || !strings.EqualFold(ub.Status, "inactive") {
				t.Fatalf("update answered blob %+v", ub)
			}
			if k, _ := e.Store.Get(b.Access); k.Active || k.Description != "rotated" {
				t.Fatalf("backend holds %+v after the update", k)
			}
			if up == translate.SideOscred && res.Header.Get("Warning") == "" {
				t.Error("an oscred upstream cannot change secrets: the answer must carry a Warning")
			}

			pages, err := credentials.List(c, credentials.ListOpts{UserID: "u-alice"}).AllPages(ctx)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			all, err := credentials.ExtractCredentials(pages)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			var ids []string
			for _, l := range all {
				ids = append(ids, l.ID)
			}
			if !slices.Contains(ids, cred.ID) {
				t.Fatalf("list %v misses %s", ids, cred.ID)
			}

			if err := credentials.Delete(ctx, keystone(t, e.URL, bt.Bob), cred.ID).ExtractErr(); !gophercloud.ResponseCodeIs(err, 403) {
				t.Fatalf("bob's delete: want 403, got %v", err)
			}
			if err := credentials.Delete(ctx, c, cred.ID).ExtractErr(); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if _, err := credentials.Get(ctx, c, cred.ID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
				t.Fatalf("get after delete: want 404, got %v", err)
			}
			if _, err := credentials.Get(ctx, keystone(t, e.URL, "not-a-token"), cred.ID).Extract(); !gophercloud.ResponseCodeIs(err, 401) {
				t.Fatalf("bad token: want 401, got %v", err)
			}
		})
	}
}
