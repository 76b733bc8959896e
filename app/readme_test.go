package app

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/credbridge/credbridge/telemetry"
)

// TestDemoAndREADMERunAsPasted runs what a new user pastes: the lines `credbridge
// demo` prints, then the README's worked examples top to bottom in the same
// shell, against one demo. Each README command's output must have the shape of
// the answer the README shows under it (same fields; same values except the
// ones that differ every run: keys, secrets, ids, times).
func TestDemoAndREADMERunAsPasted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed: make test installs it")
	}
	tel, err := telemetry.New(telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var printed bytes.Buffer
	rt, emus, err := Demo(DemoAddrs{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Upstream: "127.0.0.1:0", Identity: "127.0.0.1:0"},
		&printed, slog.New(slog.DiscardHandler), tel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rt.Shutdown(t.Context())
		for _, e := range emus {
			_ = e.Close()
		}
	})
	demo := demoLines(t, printed.String())
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := workedExamples(t, string(readme))
	var script strings.Builder
	script.WriteString("set -e\n" + demo + "\necho '=== demo done'\n")
	for i, b := range blocks {
		script.WriteString("echo '=== block " + string(rune('a'+i)) + "'\n")
		script.WriteString(strings.ReplaceAll(b.cmd, "localhost:8080", rt.Addr()) + "\n")
	}
	script.WriteString("echo '=== end'\n")
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the pasted lines failed: %v\n%s", err, out)
	}
	parts := strings.Split(string(out), "=== ")
	if len(parts) != len(blocks)+3 || !strings.HasPrefix(parts[len(parts)-1], "end") {
		t.Fatalf("not every block ran:\n%s", out)
	}
	for i, b := range blocks {
		got := strings.TrimPrefix(parts[i+2], "block "+string(rune('a'+i))+"\n")
		t.Run(strings.SplitN(b.cmd, "\n", 2)[0], func(t *testing.T) { sameShape(t, b.want, got) })
	}
}

// demoLines are the shell lines the demo printed, between its banner and
// "Ctrl-C"; the openstack ones only where the CLI is installed (make test
// installs it).
func demoLines(t *testing.T, printed string) string {
	i, j := strings.Index(printed, "# oscred client"), strings.Index(printed, "Ctrl-C stops")
	if i < 0 || j < i {
		t.Fatalf("demo printed no lines:\n%s", printed)
	}
	lines := printed[i:j]
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("the openstack CLI is needed: make test installs python3-openstackclient")
	}
	return lines
}

type example struct{ cmd, want string }

// workedExamples are the README's "Worked examples": each ```sh block with the
// block that shows its answer.
func workedExamples(t *testing.T, readme string) []example {
	start := strings.Index(readme, "## Worked examples")
	end := strings.Index(readme[start+1:], "\n## ")
	section := readme[start : start+1+end]
	var out []example
	fences := strings.Split(section, "```")
	for i := 1; i < len(fences); i += 2 {
		lang, body, _ := strings.Cut(fences[i], "\n")
		if lang != "sh" {
			continue
		}
		ex := example{cmd: body}
		if i+2 < len(fences) && strings.TrimSpace(fences[i+1]) == "" {
			_, ex.want, _ = strings.Cut(fences[i+2], "\n")
		}
		out = append(out, ex)
	}
	if len(out) < 6 {
		t.Fatalf("found %d examples in the README", len(out))
	}
	return out
}

// varying are the fields whose values differ from run to run.
var varying = map[string]bool{"access": true, "secret": true, "id": true, "create_time": true, "last_use_time": true}

// sameShape checks got against the README's shown answer want.
func sameShape(t *testing.T, want, got string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "{"):
			var w, g any
			if err := json.Unmarshal([]byte(line), &w); err != nil {
				t.Fatalf("README answer is not JSON: %s", line)
			}
			if err := json.Unmarshal([]byte(lastJSON(got)), &g); err != nil {
				t.Fatalf("no JSON answer in:\n%s", got)
			}
			compare(t, "", w, g)
		case strings.HasPrefix(line, "X-Timestamp:"), strings.HasPrefix(line, "X-Trans-Id:"):
			name, _, _ := strings.Cut(line, ":")
			if !strings.Contains(got, name+": ") {
				t.Fatalf("answer without %s:\n%s", name, got)
			}
		default:
			if !strings.Contains(got, line) {
				t.Fatalf("answer without %q:\n%s", line, got)
			}
		}
	}
}

func lastJSON(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(strings.TrimSpace(lines[i]), "{") {
			return lines[i]
		}
	}
	return ""
}

func compare(t *testing.T, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Fatalf("%s: got %v, want an object", path, got)
		}
		for k, v := range w {
			gv, ok := g[k]
			if !ok {
				t.Fatalf("%s.%s missing from %v", path, k, g)
			}
			if !varying[k] {
				compare(t, path+"."+k, v, gv)
			}
		}
	default:
		if want != got {
			t.Fatalf("%s = %v, the README shows %v", path, got, want)
		}
	}
}
