package deploy_test

import (
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/credbridge/credbridge/config"
)

// No Docker engine runs here, so compose.yaml is held to what `docker compose
// up` would do: each service's image and health check, the start order, the
// bridge's effective config (the image's ENV and files, the service's
// environment and volumes, the cache key its key service writes, run here by
// the same shell script), and the emulators' health checks run for real
// against the emulators started as compose starts them (on loopback).

type composeService struct {
	Image       string            `json:"image"`
	Entrypoint  []string          `json:"entrypoint"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Volumes     []string          `json:"volumes"`
	Ports       []string          `json:"ports"`
	Healthcheck *struct {
		Test        []string `json:"test"`
		Interval    string   `json:"interval"`
		Timeout     string   `json:"timeout"`
		Retries     int      `json:"retries"`
		StartPeriod string   `json:"start_period"`
	} `json:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
}

type composeFile struct {
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return strict[composeFile](t, "compose.yaml", raw)
}

// credbridgeServices are the services that run the credbridge image.
func credbridgeServices(c composeFile) []string {
	var out []string
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, "credbridge:") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func TestComposeShape(t *testing.T) {
	c := loadCompose(t)
	for _, s := range []string{"bridge", "redis", "otel-collector", "jaeger", "backend", "identity", "cache-key"} {
		if c.Services[s].Image == "" {
			t.Fatalf("compose lacks service %s", s)
		}
	}
	for name, s := range c.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s beyond the host's loopback", name, p)
			}
		}
		for dep, d := range s.DependsOn {
			want := "service_started"
			switch {
			case c.Services[dep].Healthcheck != nil || strings.HasPrefix(c.Services[dep].Image, "credbridge:"):
				want = "service_healthy"
			case dep == "cache-key":
				want = "service_completed_successfully"
			}
			if d.Condition != want {
				t.Errorf("%s waits for %s to be %q; want %q", name, dep, d.Condition, want)
			}
		}
	}
	for _, dep := range []string{"identity", "backend", "redis", "cache-key"} {
		if _, ok := c.Services["bridge"].DependsOn[dep]; !ok {
			t.Errorf("the bridge does not wait for %s", dep)
		}
	}
	for _, name := range credbridgeServices(c) {
		s := c.Services[name]
		if len(s.Command) > 0 && s.Command[0] == "emulate" && s.Healthcheck == nil {
			t.Errorf("emulator %s inherits the image's HEALTHCHECK, which asks an admin port it does not serve", name)
		}
	}
	if ok, _ := regexp.MatchString(`^redis:`, c.Services["redis"].Image); !ok || c.Services["redis"].Healthcheck == nil ||
		!slices.Equal(c.Services["redis"].Healthcheck.Test, []string{"CMD", "redis-cli", "ping"}) {
		t.Error("redis needs its health check (redis-cli ping)")
	}
}

// bridgeContainer is the compose bridge as it starts: the image, the
// service's command and environment, its volumes (bind mounts from deploy/,
// named volumes as the services writing them leave them).
func bridgeContainer(t *testing.T, c composeFile) container {
	t.Helper()
	s := c.Services["bridge"]
	ct := image(t)
	if len(s.Entrypoint) > 0 {
		t.Fatal("the bridge overrides the image's entrypoint")
	}
	if len(s.Command) > 0 {
		ct.args = s.Command
	}
	for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
		ct.setEnv(k, s.Environment[k])
	}
	for _, v := range s.Volumes {
		src, dst := volumeSpec(t, v)
		if _, named := c.Volumes[src]; named {
			ct.mount(t, dst, namedVolume(t, c, src))
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("bridge volume %s: %v", v, err)
		}
		ct.mount(t, path.Dir(dst), map[string][]byte{path.Base(dst): b})
	}
	return ct
}

func volumeSpec(t *testing.T, v string) (src, dst string) {
	t.Helper()
	f := strings.Split(v, ":")
	if len(f) < 2 {
		t.Fatalf("volume %q: want source:target[:ro]", v)
	}
	return f[0], f[1]
}

// namedVolume runs, here, the shell script of every service that writes the
// named volume (the cache key), its mount point moved under a temporary
// directory, and returns what it left there.
func namedVolume(t *testing.T, c composeFile, vol string) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	writers := 0
	for name, s := range c.Services {
		if name == "bridge" {
			continue
		}
		for _, v := range s.Volumes {
			src, dst := volumeSpec(t, v)
			if src != vol || strings.HasSuffix(v, ":ro") {
				continue
			}
			writers++
			if !slices.Equal(s.Entrypoint, []string{"sh", "-euc"}) || len(s.Command) != 1 {
				t.Fatalf("%s writes volume %s with something other than one sh -euc script", name, vol)
			}
			// The container's user is root and the bridge's is the image's
			// (USER in the Dockerfile); here the test's own user stands in.
			script := strings.ReplaceAll(s.Command[0], dst, dir)
			script = strings.ReplaceAll(script, imageUser(t), strings.Join([]string{strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())}, ":"))
			if out, err := exec.Command("sh", "-euc", script).CombinedOutput(); err != nil {
				t.Fatalf("%s's script: %v\n%s", name, err, out)
			}
		}
	}
	if writers != 1 {
		t.Fatalf("volume %s has %d writers; want the one service that makes it", vol, writers)
	}
	out := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, _ := e.Info()
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s/%s is %v: readable beyond its owner", vol, e.Name(), info.Mode().Perm())
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// imageUser is the Dockerfile's runtime USER (uid:gid).
func imageUser(t *testing.T) string {
	t.Helper()
	st := stages(t, "../Dockerfile")
	users := find(st[len(st)-1], "USER")
	if len(users) == 0 || !strings.Contains(users[len(users)-1], ":") {
		t.Fatal("the Dockerfile has no USER uid:gid")
	}
	return users[len(users)-1]
}

func TestComposeBridgeConfig(t *testing.T) {
	c := loadCompose(t)
	ct := bridgeContainer(t, c)
	cfg, err := ct.effective(t)
	if err != nil {
		t.Fatalf("the compose bridge would not start: %v", err)
	}
	if cfg.Cache.RedisURL == "" || cfg.Cache.HMACKeyFile == "" {
		t.Fatalf("the compose bridge must use Redis with signed entries: %q %q", cfg.Cache.RedisURL, cfg.Cache.HMACKeyFile)
	}
	key, err := config.ReadSecret(cfg.Cache.HMACKeyFile)
	if err != nil || len(key) < 32 {
		t.Errorf("cache key of %d bytes (%v): want 32+ random bytes", len(key), err)
	}
	// The bridge listens on the compose network; the host sees its ports on
	// loopback only (TestComposeShape).
	ports := strings.Join(c.Services["bridge"].Ports, " ")
	for name, addr := range map[string]string{"listen": cfg.Listen, "admin_listen": cfg.AdminListen} {
		host, port := hostOf(t, addr)
		if isLoopback(host) {
			t.Errorf("%s %s: the other containers (the collector scrapes the admin port) cannot reach it", name, addr)
		}
		if !strings.Contains(ports, ":"+strconv.Itoa(port)+":"+strconv.Itoa(port)) {
			t.Errorf("%s port %d is not published (ports %s)", name, port, ports)
		}
	}
	for _, ref := range []struct{ url, service string }{{cfg.Upstream.URL, "backend"}, {cfg.Identity.URL, "identity"}, {cfg.Cache.RedisURL, "redis"}} {
		if !strings.Contains(ref.url, "//"+ref.service+":") {
			t.Errorf("%s does not reach service %s", ref.url, ref.service)
		}
	}
}

// stack stands in for the compose network on loopback: every service:port
// the compose file names (in a URL, a listen address, a health check) gets a
// free loopback address, and each service reaches its own ports on it.
type stack struct {
	c     composeFile
	addrs map[string]string // "service:port" -> 127.0.0.1:N
	procs []*exec.Cmd
}

var (
	serviceRef = regexp.MustCompile(`(//|^)([a-z][a-z0-9-]*):([0-9]+)`)
	ownPort    = regexp.MustCompile(`(?:^0\.0\.0\.0|//127\.0\.0\.1):([0-9]+)`) // a service's own listener
)

func newStack(t *testing.T, c composeFile) *stack {
	t.Helper()
	s := &stack{c: c, addrs: map[string]string{}}
	note := func(name, v string) {
		if m := serviceRef.FindStringSubmatch(v); m != nil {
			if _, ok := c.Services[m[2]]; ok && s.addrs[m[2]+":"+m[3]] == "" {
				s.addrs[m[2]+":"+m[3]] = freeAddr(t)
			}
		}
		if m := ownPort.FindStringSubmatch(v); m != nil && s.addrs[name+":"+m[1]] == "" {
			s.addrs[name+":"+m[1]] = freeAddr(t)
		}
	}
	for name, svc := range c.Services {
		all := append(append(slices.Clone(svc.Command), svc.Entrypoint...), slices.Collect(maps.Values(svc.Environment))...)
		if svc.Healthcheck != nil {
			all = append(all, svc.Healthcheck.Test...)
		}
		for _, v := range all {
			note(name, v)
		}
	}
	return s
}

// local is v as service name would see it on the loopback stand-in.
func (s *stack) local(name, v string) string {
	v = serviceRef.ReplaceAllStringFunc(v, func(m string) string {
		pre, hp := "", m
		if strings.HasPrefix(m, "//") {
			pre, hp = "//", m[2:]
		}
		if l, ok := s.addrs[hp]; ok {
			return pre + l
		}
		return m
	})
	for k, l := range s.addrs {
		if svc, port, _ := strings.Cut(k, ":"); svc == name {
			v = strings.NewReplacer("0.0.0.0:"+port, l, "127.0.0.1:"+port, l).Replace(v)
		}
	}
	return v
}

func (s *stack) localAll(name string, vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = s.local(name, v)
	}
	return out
}

// start runs bin args with exactly env (a container inherits nothing).
func (s *stack) start(t *testing.T, bin string, args, env []string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s.procs = append(s.procs, cmd)
}

func (s *stack) stop() {
	for _, cmd := range s.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// healthy waits for service name's health check, run as compose runs it in
// the container (the image's binary stands in for CMD credbridge, the host's
// redis-cli for the redis image's), to pass; it returns the check.
func (s *stack) healthy(t *testing.T, name, bin, copied string, env []string) *exec.Cmd {
	t.Helper()
	test := s.c.Services[name].Healthcheck.Test
	if len(test) < 2 || test[0] != "CMD" {
		t.Fatalf("%s: health check %v is not the exec form", name, test)
	}
	var argv []string
	switch test[1] {
	case copied:
		argv = append([]string{bin}, s.localAll(name, test[2:])...)
	case "redis-cli":
		_, port, _ := strings.Cut(s.addrs[name+":6379"], ":")
		argv = append([]string{"redis-cli", "-p", port}, test[2:]...)
	default:
		t.Fatalf("%s: health check %v runs neither the image's %s nor redis-cli", name, test, copied)
	}
	check := func() *exec.Cmd { c := exec.Command(argv[0], argv[1:]...); c.Env = env; return c }
	if !eventually(func() bool { out, err := check().Output(); return err == nil && !strings.Contains(string(out), "ERR") }) {
		out, _ := check().CombinedOutput()
		t.Fatalf("%s: health check %v never passes: %s", name, argv, out)
	}
	return check()
}

// The compose stack, run without Docker: Redis, the emulators and the bridge
// started with their services' commands and environment (the image's files,
// the cache key made by the cache-key script), each health check passing once
// its service serves and failing once it stopped, and a README request
// through the bridge answered by the backend behind it.
func TestComposeStack(t *testing.T) {
	c := loadCompose(t)
	st := stages(t, "../Dockerfile")
	bin, copied := builtBinary(t), copiedBinary(t, st[len(st)-1])
	s := newStack(t, c)
	if _, ok := s.addrs["redis:6379"]; !ok {
		t.Fatalf("nothing reaches redis:6379 (%v)", s.addrs)
	}
	_, redisPort, _ := strings.Cut(s.addrs["redis:6379"], ":")
	s.start(t, "redis-server", append(slices.Clone(c.Services["redis"].Command[1:]), "--bind", "127.0.0.1", "--port", redisPort), nil)
	checks := map[string]*exec.Cmd{"redis": s.healthy(t, "redis", bin, copied, nil)}
	for _, name := range []string{"identity", "backend"} {
		svc := c.Services[name]
		for dep := range svc.DependsOn {
			if checks[dep] == nil {
				t.Fatalf("%s depends on %s, started after it here", name, dep)
			}
		}
		s.start(t, bin, s.localAll(name, svc.Command), nil)
		checks[name] = s.healthy(t, name, bin, copied, nil)
	}

	ct := bridgeContainer(t, c)
	args, env, _ := ct.layout(t)
	env = s.localAll("bridge", env)
	s.start(t, bin, args, env)
	// The image's HEALTHCHECK, in the bridge's environment.
	hc := healthcheckCmd(t, st)
	if len(hc) < 1 || hc[0] != copied {
		t.Fatalf("image HEALTHCHECK %v does not run %s", hc, copied)
	}
	probe := func() *exec.Cmd { p := exec.Command(bin, hc[1:]...); p.Env = env; return p }
	if !eventually(func() bool { return probe().Run() == nil }) {
		out, _ := probe().CombinedOutput()
		t.Fatalf("the bridge's HEALTHCHECK never passes: %s", out)
	}
	checks["bridge"] = probe()

	listen, _ := ct.lookupEnv("CREDBRIDGE_LISTEN")
	createThroughBridge(t, s.local("bridge", listen))
	// The token the bridge validated is cached in Redis under its HMAC.
	out, err := exec.Command("redis-cli", "-p", redisPort, "--scan").Output()
	if err != nil || len(strings.Fields(string(out))) == 0 || strings.Contains(string(out), "demo-alice-token") {
		t.Errorf("Redis after a request through the bridge holds %q (%v): want the cached token, keyed by its HMAC", out, err)
	}

	s.stop()
	for name, cmd := range checks {
		if cmd.Run() == nil {
			t.Errorf("%s: health check passes with the service stopped", name)
		}
	}
}

// healthcheckCmd is the runtime stage's HEALTHCHECK CMD [...], options
// (--interval=...) dropped.
func healthcheckCmd(t *testing.T, st [][]instr) []string {
	t.Helper()
	hc := strings.Join(find(st[len(st)-1], "HEALTHCHECK"), " ")
	_, cmd, ok := strings.Cut(hc, "CMD [")
	if !ok {
		t.Fatalf("HEALTHCHECK %q: want CMD [...]", hc)
	}
	return jsonArgs(t, "["+cmd)
}

// createThroughBridge sends the README's first create (ec2blob, Alice) to the
// bridge at addr: the backend behind it makes the key.
func createThroughBridge(t *testing.T, addr string) {
	t.Helper()
	body := `{"credential":{"user_id":"u-alice","type":"ec2","blob":{"description":"laptop"}}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/credentials", strings.NewReader(body))
	req.Header.Set("X-Auth-Token", "demo-alice-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(b), `"access":"`) {
		t.Fatalf("create through the compose bridge: %d %s", resp.StatusCode, b)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func eventually(ok func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return true
		}
	}
	return false
}
