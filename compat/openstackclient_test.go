package compat

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
	"github.com/credbridge/credbridge/translate"
)

// osc runs python-openstackclient against the bridge as its users do: a token
// and the bridge as the identity v3 endpoint (auth type admin_token), no
// clouds.yaml from the machine.
func osc(t *testing.T, base, token string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin, lerr := exec.LookPath("openstack")
	if lerr != nil {
		t.Fatal("openstack not found: `make test` installs python3-openstackclient")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin", "OS_AUTH_TYPE=admin_token",
		"OS_ENDPOINT=" + base + "/v3", "OS_TOKEN=" + token, "OS_IDENTITY_API_VERSION=3"}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func oscJSON(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("openstack printed %q: %v", out, err)
	}
}

// `openstack credential ...` resolves users and projects through the bridge's
// identity look-ups, then manages keys on an upstream of the other dialect.
func TestOpenstackClientCredentials(t *testing.T) {
	for _, up := range []translate.Side{translate.SideOscred, translate.SideIBM} {
		t.Run("upstream "+up.String(), func(t *testing.T) {
			t.Parallel()
			e := bt.Start(t, up, nil)
			run := func(token string, args ...string) string {
				t.Helper()
				out, errOut, err := osc(t, e.URL, token, args...)
				if err != nil {
					t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, errOut)
				}
				return out
			}

			var created struct {
				ID   string `json:"id"`
				Blob string `json:"blob"`
			}
			oscJSON(t, run(bt.Alice, "credential", "create", "--type", "ec2", "--project", "p-alice", "u-alice", `{"description":"osc"}`, "-f", "json"), &created)
			var blob struct{ Access, Secret string }
			if err := json.Unmarshal([]byte(created.Blob), &blob); err != nil || blob.Access == "" || blob.Secret == "" {
				t.Fatalf("create printed blob %q", created.Blob)
			}
			if created.ID != translate.HashID(blob.Access) {
				t.Fatalf("create printed id %s for access %s", created.ID, blob.Access)
			}

			var listed []struct {
				ID string `json:"ID"`
			}
			oscJSON(t, run(bt.Alice, "credential", "list", "--user", "u-alice", "-f", "json"), &listed)
			if len(listed) != 1 || listed[0].ID != created.ID {
				t.Fatalf("list printed %+v", listed)
			}

			run(bt.Alice, "credential", "set", "--type", "ec2", "--user", "u-alice",
				"--data", `{"access":"`+blob.Access+`","status":"Inactive","description":"osc-set"}`, created.ID)
			if k, ok := e.Store.Get(blob.Access); !ok || k.Active || k.Description != "osc-set" {
				t.Fatalf("backend holds %+v after credential set", k)
			}

			if _, errOut, err := osc(t, e.URL, bt.Bob, "credential", "delete", created.ID); err == nil || !strings.Contains(errOut, "HTTP 403") {
				t.Fatalf("bob's delete: err %v, stderr %q", err, errOut)
			}
			run(bt.Alice, "credential", "delete", created.ID)
			if _, ok := e.Store.Get(blob.Access); ok {
				t.Fatal("key still in the backend after credential delete")
			}

			// An administrator names the user; the look-up resolves the id.
			var byName struct {
				UserID string `json:"user_id"`
			}
			oscJSON(t, run(bt.Admin, "credential", "create", "--type", "ec2", "alice", `{"description":"by name"}`, "-f", "json"), &byName)
			if byName.UserID != "u-alice" {
				t.Fatalf("credential create for user name alice made a key for %q", byName.UserID)
			}
		})
	}
}
