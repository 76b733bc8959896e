package deploy_test

import (
	"maps"
	"net"
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

// The emulators' health checks, run as compose runs them inside each
// container (the same binary, the same arguments) against the emulators
// started with their services' commands, on loopback addresses standing in
// for the compose network's: healthy while they serve, not once stopped.
func TestComposeEmulatorHealth(t *testing.T) {
	c := loadCompose(t)
	st := stages(t, "../Dockerfile")
	bin := builtBinary(t)
	copied := copiedBinary(t, st[len(st)-1])
	addrs := map[string]string{} // "service:port" -> loopback stand-in
	var emulators []string
	for _, name := range credbridgeServices(c) {
		s := c.Services[name]
		if i := slices.Index(s.Command, "--listen"); len(s.Command) > 0 && s.Command[0] == "emulate" && i > 0 {
			_, port := hostOf(t, s.Command[i+1])
			addrs[name+":"+strconv.Itoa(port)] = freeAddr(t)
			emulators = append(emulators, name)
		}
	}
	if len(emulators) < 2 {
		t.Fatalf("want the identity and backend emulators, found %v", emulators)
	}
	ref := regexp.MustCompile(`(//|^)([a-z][a-z0-9-]*:[0-9]+)`) // service:port, in a URL or alone
	local := func(name, a string) string {
		a = ref.ReplaceAllStringFunc(a, func(m string) string {
			pre, hp := "", m
			if strings.HasPrefix(m, "//") {
				pre, hp = "//", m[2:]
			}
			if l, ok := addrs[hp]; ok {
				return pre + l
			}
			return m
		})
		// In its own container a service is 0.0.0.0 / 127.0.0.1 to itself.
		for k, l := range addrs {
			if svc, port, _ := strings.Cut(k, ":"); svc == name {
				a = strings.NewReplacer("0.0.0.0:"+port, l, "127.0.0.1:"+port, l).Replace(a)
			}
		}
		return a
	}
	var probes [][]string
	var running []*exec.Cmd
	for _, name := range emulators {
		s := c.Services[name]
		args := make([]string, len(s.Command))
		for i, a := range s.Command {
			args[i] = local(name, a)
		}
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		test := s.Healthcheck.Test
		if len(test) < 3 || test[0] != "CMD" || test[1] != copied {
			t.Fatalf("%s: health check %v does not run the image's %s", name, test, copied)
		}
		probe := make([]string, len(test)-2)
		for i, a := range test[2:] {
			probe[i] = local(name, a)
		}
		if slices.Equal(probe, test[2:]) {
			t.Fatalf("%s: health check %v does not ask the emulator's own port", name, test)
		}
		if !eventually(func() bool { return exec.Command(bin, probe...).Run() == nil }) {
			out, _ := exec.Command(bin, probe...).CombinedOutput()
			t.Fatalf("%s: health check %v fails against the running emulator: %s", name, probe, out)
		}
		probes = append(probes, probe)
		running = append(running, cmd)
	}
	for _, cmd := range running {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	for i, probe := range probes {
		if exec.Command(bin, probe...).Run() == nil {
			t.Errorf("%s: health check passes with the emulator stopped", emulators[i])
		}
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
