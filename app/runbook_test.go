package app

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCutoverRunbookAsPasted runs the README's cutover runbook end to end, as
// a user pastes it: reference servers and the bridge as separate processes,
// real HTTP, SIGHUP for each step. Only the addresses change (to free ports).
// After the cut, it reads the new primary itself: the key pairs created before
// the cut — bob's on the old cloud before the bridge, alice's through the
// bridge in shadow mode — must be there with the same secret and status.
func TestCutoverRunbookAsPasted(t *testing.T) {
	for _, tool := range []string{"curl", "sha256sum", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: make test installs it", tool)
		}
	}
	dir := t.TempDir()
	buildBinary(t, filepath.Join(dir, "bin")) // the runbook runs $PWD/bin/credbridge
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script := runbookScript(t, string(readme))
	check := `
echo "=== check"
for ak in "$AK" AKBOBBEFORETHECUT01; do
  curl -s http://$NEW/v3/credentials/$(printf %s "$ak" | sha256sum | cut -d' ' -f1) -H 'X-Auth-Token: demo-admin-token'; echo
done
echo "$SK"
`
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // the runbook waits for conditions
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -e\n"+script+check)
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the runbook failed: %v\n%s", err, out)
	}
	for _, step := range []string{`"kind":"missing_on_secondary"`, "verified: ready to cut", `"status":"active"`,
		"same key pair on the new cloud", `"primary":"ec2blob-keystone http://`, "mirrored back to the old cloud",
		"the old cloud still agrees", `"mode":"off"`} {
		if !strings.Contains(string(out), step) {
			t.Fatalf("the runbook's output lacks %q:\n%s", step, out)
		}
	}
	_, after, _ := strings.Cut(string(out), "=== check\n")
	var lines []string
	for _, l := range strings.Split(after, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) < 3 {
		t.Fatalf("check printed:\n%s", after)
	}
	want := []string{lines[len(lines)-1], "bob-secret-from-before-the-cut-0000000000"}
	for i, line := range lines[len(lines)-3 : len(lines)-1] {
		var a struct {
			Credential struct {
				UserID string `json:"user_id"`
				Blob   string `json:"blob"`
			} `json:"credential"`
		}
		var blob struct{ Secret, Status string }
		if json.Unmarshal([]byte(line), &a) != nil || json.Unmarshal([]byte(a.Credential.Blob), &blob) != nil {
			t.Fatalf("the new primary's answer: %s", line)
		}
		if blob.Secret != want[i] || (blob.Status != "" && !strings.EqualFold(blob.Status, "active")) {
			t.Fatalf("key %d on the new primary: secret %q status %q; want %q, active\n%s", i, blob.Secret, blob.Status, want[i], after)
		}
	}
}

// runbookScript is the README's cutover runbook: its sh blocks in order, the
// addresses on its first line replaced by free loopback ports.
func runbookScript(t *testing.T, readme string) string {
	t.Helper()
	i := strings.Index(readme, "### Cutover runbook")
	if i < 0 {
		t.Fatal("the README has no cutover runbook")
	}
	section := readme[i:]
	if j := strings.Index(section, "\n## "); j > 0 {
		section = section[:j]
	}
	var blocks []string
	fences := strings.Split(section, "```")
	for k := 1; k < len(fences); k += 2 {
		if lang, body, _ := strings.Cut(fences[k], "\n"); lang == "sh" {
			blocks = append(blocks, body)
		}
	}
	if len(blocks) < 6 {
		t.Fatalf("the runbook has %d sh blocks", len(blocks))
	}
	addrs := regexp.MustCompile(`^OLD=\S+ IDN=\S+ NEW=\S+ BRIDGE=\S+ ADMIN=\S+`)
	if !addrs.MatchString(blocks[0]) {
		t.Fatalf("the runbook's first line does not set the addresses: %q", strings.SplitN(blocks[0], "\n", 2)[0])
	}
	blocks[0] = addrs.ReplaceAllString(blocks[0], "OLD="+freeAddr(t)+" IDN="+freeAddr(t)+" NEW="+freeAddr(t)+" BRIDGE="+freeAddr(t)+" ADMIN="+freeAddr(t))
	return strings.Join(blocks, "\n")
}
