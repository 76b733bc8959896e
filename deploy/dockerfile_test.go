package deploy_test

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moby/patternmatcher"
)

// No Docker engine runs where the tests run, so the image cannot be built
// here. This test holds the Dockerfile to what the image promises instead:
// multi-stage, a static binary with its version and commit, a non-root
// runtime stage with OCI labels that sets no listen address, a HEALTHCHECK
// that runs the binary it copied. It builds the binary the way the Dockerfile
// does, from the build context .dockerignore leaves (with Docker's own pattern
// matcher), reads its ELF header (no interpreter, no shared libraries: it runs
// on a distroless static base) and asks it its version.

func TestDockerfile(t *testing.T) {
	st := stages(t, "../Dockerfile")
	if len(st) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(st))
	}
	build, final := st[0], st[len(st)-1]

	t.Run("static build with version", func(t *testing.T) {
		runs := strings.Join(find(build, "RUN"), "\n")
		for _, want := range []string{"CGO_ENABLED=0", "./cmd/credbridge", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}"} {
			if !strings.Contains(runs, want) {
				t.Errorf("build stage must build with %s:\n%s", want, runs)
			}
		}
		checkArgs(t, "build", build)
	})

	t.Run("runtime stage", func(t *testing.T) {
		users := find(final, "USER")
		if len(users) == 0 {
			t.Fatal("runtime stage has no USER: it would run as root")
		}
		u, _, _ := strings.Cut(users[len(users)-1], ":")
		if n, err := strconv.Atoi(u); err != nil || n == 0 {
			t.Errorf("runtime stage runs as %q: want a non-zero number, which runAsNonRoot can check", users[len(users)-1])
		}
		if len(find(final, "RUN")) > 0 {
			t.Error("runtime stage runs commands: a distroless image has no shell")
		}
		copied := copiedBinary(t, final)
		hc := strings.Join(find(final, "HEALTHCHECK"), " ")
		if !strings.Contains(hc, `"`+copied+`", "healthcheck"`) {
			t.Errorf("HEALTHCHECK %q does not run %s healthcheck", hc, copied)
		}
		ep := strings.Join(find(final, "ENTRYPOINT"), " ")
		if !strings.Contains(ep, `"`+copied+`"`) {
			t.Errorf("ENTRYPOINT %q is not the copied binary %s", ep, copied)
		}
	})

	t.Run("OCI labels", func(t *testing.T) {
		var got []string
		for _, l := range find(final, "LABEL") {
			got = append(got, envPairs(t, l)...)
		}
		for _, want := range []string{"org.opencontainers.image.title=credbridge", "org.opencontainers.image.version=${VERSION}",
			"org.opencontainers.image.revision=${COMMIT}", "org.opencontainers.image.source=https://github.com/credbridge/credbridge"} {
			if !slices.Contains(got, want) {
				t.Errorf("runtime stage lacks LABEL %s (has %v)", want, got)
			}
		}
		// A stage sees only the ARGs it declares: without them the labels are empty.
		checkArgs(t, "runtime", final)
	})

	t.Run("no listen address", func(t *testing.T) {
		img := image(t)
		for _, k := range []string{"CREDBRIDGE_LISTEN", "CREDBRIDGE_ADMIN_LISTEN"} {
			if v, ok := img.lookupEnv(k); ok {
				t.Errorf("the image sets %s=%s: it would beat the listen address a deployment's config file states", k, v)
			}
		}
		cfg, err := img.effective(t)
		if err != nil {
			t.Fatalf("the image's own config does not load: %v", err)
		}
		exposed := strings.Fields(strings.Join(find(final, "EXPOSE"), " "))
		for name, addr := range map[string]string{"listen": cfg.Listen, "admin_listen": cfg.AdminListen} {
			host, port := hostOf(t, addr)
			if !isLoopback(host) {
				t.Errorf("%s %s: with no deployment's word the image must stay on loopback", name, addr)
			}
			if !slices.Contains(exposed, strconv.Itoa(port)) {
				t.Errorf("%s port %d not in EXPOSE %v", name, port, exposed)
			}
		}
	})

	t.Run("binary from the build context", func(t *testing.T) {
		bin := builtBinary(t)
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
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "credbridge "+testVersion+" (commit "+testCommit+",") {
			t.Errorf("version of a binary built with VERSION=%s COMMIT=%s: %v %s", testVersion, testCommit, err, out)
		}
	})
}

func checkArgs(t *testing.T, stage string, st []instr) {
	t.Helper()
	args := find(st, "ARG")
	for _, a := range []string{"VERSION", "COMMIT"} {
		if !slices.ContainsFunc(args, func(s string) bool { return s == a || strings.HasPrefix(s, a+"=") }) {
			t.Errorf("%s stage does not declare ARG %s", stage, a)
		}
	}
}

// copiedBinary is where the runtime stage puts the binary it copies from the
// build stage.
func copiedBinary(t *testing.T, final []instr) string {
	t.Helper()
	for _, c := range find(final, "COPY") {
		if f := strings.Fields(c); len(f) == 3 && f[0] == "--from=build" {
			return f[2]
		}
	}
	t.Fatal("runtime stage copies no binary from the build stage")
	return ""
}

// ldflags is the build stage's -ldflags "..." with the build args filled in.
func ldflags(build []instr, version, commit string) (string, error) {
	m := regexp.MustCompile(`-ldflags "([^"]*)"`).FindStringSubmatch(strings.Join(find(build, "RUN"), "\n"))
	if m == nil {
		return "", errors.New("build stage has no -ldflags \"...\"")
	}
	return strings.NewReplacer("${VERSION}", version, "${COMMIT}", commit).Replace(m[1]), nil
}

// The build args the tests build with.
const testVersion, testCommit = "test-1.2.3", "abc1234"

var built struct {
	once sync.Once
	dir  string
	bin  string
	err  string
}

// builtBinary is the binary built once as the Dockerfile builds it, with
// testVersion and testCommit.
func builtBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "credbridge-deploy-")
		if err != nil {
			built.err = err.Error()
			return
		}
		built.dir = dir
		built.bin, built.err = buildLikeDockerfile(dir, stages(t, "../Dockerfile")[0], testVersion, testCommit)
	})
	if built.err != "" {
		t.Fatal(built.err)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildLikeDockerfile copies what .dockerignore lets into the build context
// and builds ./cmd/credbridge there as the build stage does.
func buildLikeDockerfile(dir string, build []instr, version, commit string) (bin, failure string) {
	ctx := filepath.Join(dir, "context")
	pm, err := dockerignore()
	if err != nil {
		return "", err.Error()
	}
	flags, err := ldflags(build, version, commit)
	if err != nil {
		return "", err.Error()
	}
	err = filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", p)
		if rel == "." {
			return nil
		}
		if skip, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel)); err != nil || skip {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(ctx, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return "", err.Error()
	}
	bin = filepath.Join(dir, "credbridge")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", flags, "-o", bin, "./cmd/credbridge")
	cmd.Dir = ctx
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("go build in the build context: %v\n%s", err, out)
	}
	return bin, ""
}

func dockerignore() (*patternmatcher.PatternMatcher, error) {
	raw, err := os.ReadFile("../.dockerignore")
	if err != nil {
		return nil, err
	}
	var patterns []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	return patternmatcher.New(patterns)
}

// The build context leaves out what the image must not carry: the history,
// local binaries, keys wherever they lie, the modules that are not the binary.
func TestDockerignore(t *testing.T) {
	pm, err := dockerignore()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".git/config", "bin/credbridge", "deploy/k8s/gateway/config.yaml", "compat/go.mod",
		"hmac.key", "deploy/secrets/hmac.key", "internal/x/client.pem", "proxy/proxy.test", "cpu.prof"} {
		if skip, err := pm.MatchesOrParentMatches(p); err != nil || !skip {
			t.Errorf(".dockerignore lets %s into the build context (%v)", p, err)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "config.yaml", "cmd/credbridge/main.go"} {
		if skip, _ := pm.MatchesOrParentMatches(p); skip {
			t.Errorf(".dockerignore leaves out %s, which the build needs", p)
		}
	}
}
