package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeCommands are the lines of README.md's sh blocks, comments dropped.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(raw), -1) {
		for _, l := range strings.Split(block[1], "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
	}
	return out
}

// Every command in README.md runs as pasted from the repository's root: make
// targets and files exist, kustomizations render, the image runs the
// subcommand given (the binary built as the image builds it stands in), and
// the shell lines that make the Secrets' files run here and make them.
func TestReadme(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	img := makeImage(t)
	work := t.TempDir()
	cmds := readmeCommands(t)
	if len(cmds) < 10 {
		t.Fatalf("README.md has %d commands; the sh blocks were not found", len(cmds))
	}
	for _, line := range cmds {
		f := strings.Fields(line)
		switch f[0] {
		case "make":
			for _, target := range f[1:] {
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(mk) {
					t.Errorf("%q: the Makefile has no target %s", line, target)
				}
			}
		case "docker":
			checkDocker(t, line, f, img)
		case "kubectl":
			checkKubectl(t, line, f, work)
		case "head", "stty", "rm":
			cmd := exec.Command("sh", "-c", line)
			cmd.Dir = work
			cmd.Stdin = strings.NewReader("typed-password\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%q: %v\n%s", line, err, out)
			}
		default:
			t.Errorf("%q: a command this test does not know; teach it", line)
		}
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("the README leaves secret files behind: %v", ents)
	}
}

func checkDocker(t *testing.T, line string, f []string, img string) {
	t.Helper()
	switch {
	case len(f) >= 5 && f[1] == "compose" && f[2] == "-f":
		if _, err := os.Stat(filepath.Join("..", f[3])); err != nil {
			t.Errorf("%q: %v", line, err)
		}
		if sub := f[4]; sub != "up" && sub != "ps" && sub != "down" && sub != "logs" {
			t.Errorf("%q: compose %s?", line, sub)
		}
	case len(f) >= 5 && f[1] == "run" && f[2] == "--rm":
		if f[3] != img {
			t.Errorf("%q: make image builds %s", line, img)
		}
		cmd := exec.Command(builtBinary(t), f[4:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%q: the image's binary says %v\n%s", line, err, out)
		}
	default:
		t.Errorf("%q: a docker command this test does not know", line)
	}
}

func checkKubectl(t *testing.T, line string, f []string, work string) {
	t.Helper()
	switch {
	case len(f) == 3 && f[1] == "kustomize", len(f) == 4 && f[1] == "apply" && f[2] == "-k":
		renderDir(t, filepath.Join("..", f[len(f)-1]))
	case len(f) >= 5 && f[1] == "create" && f[2] == "secret" && f[3] == "generic":
		for _, a := range f[5:] {
			_, file, ok := strings.Cut(strings.TrimPrefix(a, "--from-file="), "=")
			if !ok {
				t.Errorf("%q: want --from-file=KEY=FILE", line)
				continue
			}
			if b, err := os.ReadFile(filepath.Join(work, file)); err != nil || len(b) == 0 {
				t.Errorf("%q: no earlier line makes %s (%v)", line, file, err)
			}
		}
	default:
		t.Errorf("%q: a kubectl command this test does not know", line)
	}
}

// The figures README.md gives match the manifests and the Dockerfile.
func TestReadmeFigures(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	grab := func(re string) []string {
		m := regexp.MustCompile(re).FindStringSubmatch(readme)
		if m == nil {
			t.Fatalf("README.md no longer says %s", re)
		}
		return m[1:]
	}
	m := renderDir(t, "k8s/gateway")
	d := m.deployments[0]
	k, _ := bridge(t, d)
	pc := podContainer(t, m, d)
	cfg, err := pc.effective(t)
	if err != nil {
		t.Fatal(err)
	}
	hpa := m.hpas[0].Spec
	var svcPorts []string
	for _, s := range m.services {
		svcPorts = append(svcPorts, strconv.Itoa(int(s.Spec.Ports[0].Port)))
	}
	st := stages(t, "../Dockerfile")
	user, _, _ := strings.Cut(imageUser(t), ":")
	checks := []struct {
		re   string
		want []string
	}{
		{`(\d+) replicas, HPA (\d+)-(\d+) at (\d+) % CPU`, []string{itoa32(*d.Spec.Replicas), itoa32(*hpa.MinReplicas), itoa32(hpa.MaxReplicas), itoa32(*hpa.Metrics[0].Resource.Target.AverageUtilization)}},
		{`requests (\S+) CPU / (\S+), limit (\S+),`, []string{k.Resources.Requests.Cpu().String(), k.Resources.Requests.Memory().String(), k.Resources.Limits.Memory().String()}},
		{`(\d+) s preStop pause, (\d+) s grace for the (\d+) s .shutdown_timeout.`, []string{strconv.Itoa(int(k.Lifecycle.PreStop.Sleep.Seconds)), strconv.Itoa(int(*d.Spec.Template.Spec.TerminationGracePeriodSeconds)), strconv.Itoa(int(cfg.ShutdownTimeout / time.Second))}},
		{`client port (\d+); admin port (\d+)`, svcPorts},
		{`runs as user (\d+)`, []string{user}},
		{`exposes (\d+)\s+\(clients\) and (\d+)`, strings.Fields(strings.Join(find(st[len(st)-1], "EXPOSE"), " "))},
	}
	for _, c := range checks {
		if got := grab(c.re); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("README.md says %v for %s; the files say %v", got, c.re, c.want)
		}
	}
}

func itoa32(n int32) string { return strconv.Itoa(int(n)) }
