package deploy_test

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/credbridge/credbridge/config"
)

// No Docker engine runs where the tests run, so the image cannot be built
// here. This test holds the Dockerfile to what the image promises instead:
// multi-stage, a static binary, a non-root runtime stage that exposes both
// listeners, a HEALTHCHECK that runs the binary it copied, and an effective
// config that credbridge accepts. It also builds the binary the way the
// Dockerfile does and reads its ELF header: no interpreter, no shared
// libraries, so it runs on a distroless static base.

type instr struct{ cmd, args string }

// stages reads a Dockerfile into its stages' instructions (continuations
// joined, comments dropped).
func stages(t *testing.T, path string) [][]instr {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]instr
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && line == "") {
			continue
		}
		if strings.HasSuffix(l, `\`) {
			line += strings.TrimSuffix(l, `\`) + " "
			continue
		}
		line += l
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			out = append(out, nil)
		}
		if len(out) == 0 {
			t.Fatalf("%s: %s before the first FROM", path, cmd)
		}
		out[len(out)-1] = append(out[len(out)-1], instr{cmd, strings.TrimSpace(args)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func find(st []instr, cmd string) []string {
	var out []string
	for _, in := range st {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	st := stages(t, "../Dockerfile")
	if len(st) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(st))
	}
	build, final := st[0], st[len(st)-1]

	t.Run("static build", func(t *testing.T) {
		runs := strings.Join(find(build, "RUN"), "\n")
		if !strings.Contains(runs, "CGO_ENABLED=0") || !strings.Contains(runs, "./cmd/credbridge") {
			t.Fatalf("build stage must build ./cmd/credbridge with CGO_ENABLED=0:\n%s", runs)
		}
	})

	t.Run("runtime stage", func(t *testing.T) {
		users := find(final, "USER")
		if len(users) == 0 {
			t.Fatal("runtime stage has no USER: it would run as root")
		}
		u, _, _ := strings.Cut(users[len(users)-1], ":")
		if u == "root" || u == "0" {
			t.Fatalf("runtime stage runs as %q", users[len(users)-1])
		}
		if len(find(final, "RUN")) > 0 {
			t.Error("runtime stage runs commands: a distroless image has no shell")
		}
		var copied string
		for _, c := range find(final, "COPY") {
			if f := strings.Fields(c); len(f) == 3 && f[0] == "--from=build" {
				copied = f[2]
			}
		}
		if copied == "" {
			t.Fatal("runtime stage copies no binary from the build stage")
		}
		hc := strings.Join(find(final, "HEALTHCHECK"), " ")
		if !strings.Contains(hc, `"`+copied+`", "healthcheck"`) {
			t.Errorf("HEALTHCHECK %q does not run %s healthcheck", hc, copied)
		}
		ep := strings.Join(find(final, "ENTRYPOINT"), " ")
		if !strings.Contains(ep, `"`+copied+`"`) {
			t.Errorf("ENTRYPOINT %q is not the copied binary %s", ep, copied)
		}
	})

	t.Run("effective config", func(t *testing.T) {
		// ENV k=v pairs of the runtime stage, then the config file it copies.
		var env []string
		for _, e := range find(final, "ENV") {
			env = append(env, strings.Fields(e)...)
		}
		var cfgPath string
		for _, e := range env {
			if k, v, _ := strings.Cut(e, "="); k == "CREDBRIDGE_CONFIG" {
				cfgPath = v
			}
		}
		src := ""
		for _, c := range find(final, "COPY") {
			if f := strings.Fields(c); len(f) == 2 && f[1] == cfgPath {
				src = f[0]
			}
		}
		if src == "" {
			t.Fatalf("CREDBRIDGE_CONFIG=%q is not a file the image copies", cfgPath)
		}
		cfg, err := config.Load(filepath.Join("..", src), env)
		if err != nil {
			t.Fatalf("the image's config does not load: %v", err)
		}
		exposed := strings.Fields(strings.Join(find(final, "EXPOSE"), " "))
		for name, addr := range map[string]string{"listen": cfg.Listen, "admin_listen": cfg.AdminListen} {
			host, port, _ := strings.Cut(addr, ":")
			if host != "0.0.0.0" {
				t.Errorf("%s %s: in a container it must listen beyond loopback", name, addr)
			}
			if !slices.Contains(exposed, port) {
				t.Errorf("%s port %s not in EXPOSE %v", name, port, exposed)
			}
		}
	})

	t.Run("binary is static", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "credbridge")
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/credbridge")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("binary has an ELF interpreter: it is dynamically linked")
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("binary needs shared libraries %v", libs)
		}
	})
}

// The build context leaves out what the image must not carry or need.
func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(raw))
	for _, want := range []string{".git", "bin"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}
