package deploy_test

import (
	"bufio"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/credbridge/credbridge/config"
)

// container is what a credbridge process sees when it starts: its arguments
// after the image's ENTRYPOINT, its environment (the image's ENV first, the
// deployment's after: the later one wins, as in Docker and Kubernetes) and
// its filesystem (absolute path -> contents), mounts laid over the image.
type container struct {
	args  []string
	env   []string
	files map[string][]byte
	root  string // where effective laid the files out
}

// inContainer is the container's path for a path effective moved under its
// root.
func (c *container) inContainer(p string) string {
	if c.root == "" {
		return p
	}
	if rel, ok := strings.CutPrefix(p, c.root); ok {
		return rel
	}
	return p
}

// setEnv puts k=v after everything before it, so it wins.
func (c *container) setEnv(k, v string) {
	c.env = append(c.env, k+"="+v)
}

// lookupEnv is the value a process would read: the last one set.
func (c *container) lookupEnv(k string) (string, bool) {
	for i := len(c.env) - 1; i >= 0; i-- {
		if n, v, _ := strings.Cut(c.env[i], "="); n == k {
			return v, true
		}
	}
	return "", false
}

// mount lays files over dir: whatever the image had under dir is hidden.
func (c *container) mount(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if !path.IsAbs(dir) {
		t.Fatalf("mount point %q is not absolute", dir)
	}
	for p := range c.files {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			delete(c.files, p)
		}
	}
	for name, b := range files {
		c.files[path.Join(dir, name)] = b
	}
}

// configPath resolves the config file as `credbridge serve` does
// (cmd/credbridge configPath): --config, then $CREDBRIDGE_CONFIG, then
// ./config.yaml in the working directory, none in these images ("": defaults
// and environment only).
func (c *container) configPath() string {
	for i, a := range c.args {
		if a == "--config" && i+1 < len(c.args) {
			return c.args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v
		}
	}
	if p, ok := c.lookupEnv("CREDBRIDGE_CONFIG"); ok && p != "" {
		return p
	}
	return ""
}

// effective loads the config this container's `credbridge serve` runs with,
// through the product's own loader (file, CREDBRIDGE_* overrides, defaults,
// validation, secret files read), over the container's files laid out.
func (c *container) effective(t *testing.T) (*config.Config, error) {
	t.Helper()
	_, env, file := c.layout(t)
	return config.Load(file, env)
}

// layout writes the container's filesystem under a temporary root and moves
// every path it holds, in the config file, the arguments and the
// environment, under that root; a path the container does not hold is left
// alone and fails as it would in the container. It returns the arguments and
// environment to run the binary with, and the config file it resolves ("":
// none).
func (c *container) layout(t *testing.T) (args, env []string, file string) {
	t.Helper()
	root := t.TempDir()
	c.root = root
	paths := make([]string, 0, len(c.files))
	for p, b := range c.files {
		local := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, b, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	// Longest first: /etc/a/b.yaml before /etc/a/b.
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	reroot := func(s string) string {
		for _, p := range paths {
			s = strings.ReplaceAll(s, p, filepath.Join(root, p))
		}
		return s
	}
	for _, a := range c.args {
		args = append(args, reroot(a))
	}
	for _, kv := range c.env {
		env = append(env, reroot(kv))
	}
	p := c.configPath()
	if p == "" {
		return args, env, ""
	}
	if _, ok := c.files[p]; !ok {
		t.Fatalf("the config file %s is not in the container (files: %v)", p, slices.Sorted(maps.Keys(c.files)))
	}
	file = filepath.Join(root, p)
	if err := os.WriteFile(file, []byte(reroot(string(c.files[p]))), 0o600); err != nil {
		t.Fatal(err)
	}
	return args, env, file
}

// instr is one Dockerfile instruction.
type instr struct{ cmd, args string }

// stages reads a Dockerfile into its stages' instructions (continuations
// joined, comments dropped).
func stages(t *testing.T, path string) [][]instr {
	t.Helper()
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

// envPairs splits an ENV or LABEL instruction's k=v pairs ("k=v" or
// `k="v w"`).
func envPairs(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || strings.ContainsAny(k, " \t") {
			t.Fatalf("Dockerfile: %q is not k=v (the legacy `ENV k v` form is not used here)", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				t.Fatalf("Dockerfile: unterminated quote in %q", s)
			}
			v, s = rest[1:1+end], rest[2+end:]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		out = append(out, k+"="+v)
	}
	return out
}

// image is the runtime stage of ../Dockerfile as a container: its ENV, the
// files it COPYs from the build context, its USER, and CMD as the arguments.
// (Files COPYed --from another stage are binaries, not read here.)
func image(t *testing.T) container {
	t.Helper()
	st := stages(t, "../Dockerfile")
	final := st[len(st)-1]
	c := container{files: map[string][]byte{}}
	for _, e := range find(final, "ENV") {
		c.env = append(c.env, envPairs(t, e)...)
	}
	for _, cp := range find(final, "COPY") {
		f := strings.Fields(cp)
		if strings.HasPrefix(f[0], "--from=") {
			continue
		}
		if len(f) != 2 {
			t.Fatalf("Dockerfile: COPY %s: want one source and one destination", cp)
		}
		b, err := os.ReadFile(filepath.Join("..", f[0]))
		if err != nil {
			t.Fatalf("Dockerfile: COPY %s: %v", cp, err)
		}
		c.files[f[1]] = b
	}
	for _, cmd := range find(final, "CMD") {
		c.args = jsonArgs(t, cmd)
	}
	return c
}

// jsonArgs reads an exec-form instruction (["a", "b"]).
func jsonArgs(t *testing.T, s string) []string {
	t.Helper()
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		t.Fatalf("Dockerfile: %q is not the exec form", s)
	}
	var out []string
	for _, a := range strings.Split(strings.Trim(s, "[]"), ",") {
		out = append(out, strings.Trim(strings.TrimSpace(a), `"`))
	}
	return out
}
