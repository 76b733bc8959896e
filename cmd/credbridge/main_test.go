package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credbridge/credbridge/emulator"
	bt "github.com/credbridge/credbridge/internal/testing/bridgetest"
)

var bin string

// TestMain builds the real binary once; the tests drive it as users do.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "credbridge-bin")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "credbridge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		panic("build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runBin(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	out, code := runBin(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "credbridge ") || !strings.Contains(out, "go1.") {
		t.Fatalf("%d %q", code, out)
	}
}

func TestUnknownCommand(t *testing.T) {
	if out, code := runBin(t, nil, "frobnicate"); code != 2 || !strings.Contains(out, "usage") {
		t.Fatalf("%d %q", code, out)
	}
}

func TestCheckConfig(t *testing.T) {
	key := filepath.Join(t.TempDir(), "hmac.key")
	if err := os.WriteFile(key, []byte("an-hmac-key-of-decent-length-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, "upstream: {dialect: ec2blob, flavor: keystone, url: 'http://127.0.0.1:5000'}\ncache: {redis_url: 'redis://:hunter2@127.0.0.1:6379', hmac_key_file: "+key+"}\n")
	out, code := runBin(t, nil, "check-config", "--config", good)
	if code != 0 || !strings.Contains(out, "flavor: keystone") || strings.Contains(out, "hunter2") {
		t.Fatalf("%d %s", code, out)
	}
	out, code = runBin(t, []string{"CREDBRIDGE_CONFIG=" + good, "CREDBRIDGE_UPSTREAM_DIALECT=nonsense"}, "check-config")
	if code != 1 || !strings.Contains(out, "upstream.dialect") {
		t.Fatalf("env override not refused: %d %s", code, out)
	}
	bad := writeFile(t, "upstream:\n  timout: 3s\n")
	if out, code = runBin(t, nil, "check-config", "--config", bad); code != 1 || !strings.Contains(out, "timout") {
		t.Fatalf("%d %s", code, out)
	}
	if out, code = runBin(t, nil, "check-config", "--config", "/nonexistent.yaml"); code != 1 || !strings.Contains(out, "nonexistent") {
		t.Fatalf("%d %s", code, out)
	}
	// No flag, no $CREDBRIDGE_CONFIG, no ./config.yaml: defaults and environment.
	cmd := exec.Command(bin, "check-config")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "CREDBRIDGE_CONFIG=", "CREDBRIDGE_UPSTREAM_URL=http://127.0.0.1:7777")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "127.0.0.1:7777") {
		t.Fatalf("%v %s", err, out)
	}
}

// waitFor polls url until it answers.
func waitFor(t *testing.T, url string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

func freeAddr(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	return addr
}

func TestServeReloadAndShutdown(t *testing.T) {
	dir := emulator.NewDirectory(emulator.DemoUsers())
	idn := httptest.NewServer(emulator.NewIdentity(dir).Handler())
	defer idn.Close()
	osc := emulator.NewOscred(dir)
	up := httptest.NewServer(osc.Handler())
	defer up.Close()
	listen, admin := freeAddr(t), freeAddr(t)
	content := "listen: " + listen + "\nadmin_listen: " + admin + "\nupstream: {url: '" + up.URL + "'}\nidentity: {url: '" + idn.URL + "'}\n"
	path := writeFile(t, content)
	cmd := exec.Command(bin, "serve", "--config", path)
	var logs bt.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "http://"+admin+"/healthz")
	base := "http://" + listen

	r := bt.Do(t, base, "POST", "/credentials", bt.Admin, "application/json", `{"credential":{"user_id":"u-alice","type":"ec2"}}`)
	if r.Status != 201 {
		t.Fatalf("create through the binary: %d %s", r.Status, r.Body)
	}
	ak := bt.Blob(r.Cred())["access"].(string)

	if out, code := runBin(t, nil, "healthcheck", "--config", path); code != 0 {
		t.Fatalf("healthcheck: %d %s", code, out)
	}

	// A broken file on SIGHUP is refused; the old config keeps serving.
	if err := os.WriteFile(path, []byte("upstream: {dialect: soap}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, &logs, "reload refused")
	r = bt.Do(t, base, "GET", "/v3.0/OS-CREDENTIAL/credentials/"+ak, bt.Alice, "", "")
	if r.Status != 200 {
		t.Fatalf("after a broken reload: %d %s\nlogs: %s", r.Status, r.Body, logs.String())
	}
	// A good file on SIGHUP takes effect: delete is now for admins only.
	if err := os.WriteFile(path, []byte(content+"policy: {rules: {delete: [admin]}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, &logs, "config reloaded")
	if r = bt.Do(t, base, "DELETE", "/v3.0/OS-CREDENTIAL/credentials/"+ak, bt.Alice, "", ""); r.Status != 403 {
		t.Fatalf("reloaded policy not applied: %d %s", r.Status, r.Body)
	}

	// SIGTERM: the process drains and exits 0.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
	for _, secret := range []string{bt.Admin, bt.Alice} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a token reached the log: %s", logs.String())
		}
	}
}

// runtime.gomaxprocs reaches the runtime, and 0 keeps Go's choice; read back
// from the gauge on /metrics.
func TestServeSetsGOMAXPROCS(t *testing.T) {
	tests := []struct {
		name, runtime, env, want string
	}{
		{"default is Go's choice", "", "", strconv.Itoa(runtime.GOMAXPROCS(0))},
		{"fixed count", "runtime: {gomaxprocs: 3}\n", "", "3"},
		{"the environment's GOMAXPROCS", "", "GOMAXPROCS=1", "1"},
		{"config over environment", "runtime: {gomaxprocs: 3}\n", "GOMAXPROCS=1", "3"},
	}
	re := regexp.MustCompile(`(?m)^credbridge_gomaxprocs (\d+)$`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			listen, admin := freeAddr(t), freeAddr(t)
			cmd := exec.Command(bin, "serve", "--config", writeFile(t, "listen: "+listen+"\nadmin_listen: "+admin+"\n"+tc.runtime))
			if tc.env != "" {
				cmd.Env = append(os.Environ(), tc.env)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			waitFor(t, "http://"+admin+"/healthz")
			resp, err := http.Get("http://" + admin + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := re.FindSubmatch(body); m == nil || string(m[1]) != tc.want {
				t.Fatalf("credbridge_gomaxprocs %q, want %s", m, tc.want)
			}
		})
	}
}

// startPrinting starts the binary and returns the first match of re in its output.
func startPrinting(t *testing.T, re *regexp.Regexp, args ...string) (*exec.Cmd, []string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); pw.Close() })
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m
				sent = true
			}
		}
	}()
	select {
	case m := <-found:
		return cmd, m
	case <-time.After(10 * time.Second):
		t.Fatalf("no line matching %s", re)
	}
	return nil, nil
}

func TestEmulate(t *testing.T) {
	for _, kind := range [][]string{{"oscred"}, {"ec2blob", "--flavor", "keystone"}, {"identity"}} {
		t.Run(kind[0], func(t *testing.T) {
			args := append([]string{"emulate"}, kind...)
			args = append(args, "--listen", "127.0.0.1:0")
			_, m := startPrinting(t, regexp.MustCompile(`listening on (\S+)`), args...)
			r := bt.Do(t, "http://"+m[1], "GET", "/nothing", "", "", "")
			if r.Status != 404 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		})
	}
	if out, code := runBin(t, nil, "emulate", "ec2blob", "--listen", "127.0.0.1:0", "--flavor", "aws"); code != 1 || !strings.Contains(out, "flavor") {
		t.Fatalf("%d %s", code, out)
	}
}

func TestDemo(t *testing.T) {
	_, m := startPrinting(t, regexp.MustCompile(`bridge\s+(http://\S+)`), "demo",
		"--listen", freeAddr(t), "--admin-listen", freeAddr(t), "--upstream-listen", freeAddr(t), "--identity-listen", freeAddr(t))
	r := bt.Do(t, m[1], "POST", "/v3.0/OS-CREDENTIAL/credentials", bt.Admin, "application/json;charset=utf8", `{"credential":{"user_id":"u-alice"}}`)
	if r.Status != 201 || r.Cred()["secret"] == nil {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

// Every subcommand prints its usage for -h and --help and exits 0.
func TestHelpEveryCommand(t *testing.T) {
	for _, c := range commands {
		for _, flag := range []string{"--help", "-h"} {
			t.Run(c.name+" "+flag, func(t *testing.T) {
				out, err := exec.Command(bin, c.name, flag).Output() // stdout only
				if err != nil || strings.Count(string(out), "usage: credbridge "+c.synopsis) != 1 {
					t.Fatalf("%v %q", err, out)
				}
			})
		}
	}
	if out, code := runBin(t, nil, "help", "emulate"); code != 0 || !strings.Contains(out, "-listen") || !strings.Contains(out, "-flavor") {
		t.Fatalf("help emulate: %d %q", code, out)
	}
	if out, code := runBin(t, nil, "--help"); code != 0 || !strings.Contains(out, "check-config [--config FILE] [--offline]") {
		t.Fatalf("--help: %d %q", code, out)
	}
	// After the server's name as well as before it.
	if out, code := runBin(t, nil, "emulate", "oscred", "--help"); code != 0 || !strings.Contains(out, "usage: credbridge emulate") {
		t.Fatalf("emulate oscred --help: %d %q", code, out)
	}
}

// A command line that cannot run says why and exits 2, as flag does.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"check-config", "--config"}, "flag needs an argument"},
		{[]string{"emulate", "--listen", "127.0.0.1:0"}, "which one?"},
		{[]string{"emulate", "oscred", "ec2blob", "--listen", "127.0.0.1:0"}, "which one?"},
		{[]string{"emulate", "soap", "--listen", "127.0.0.1:0"}, `unknown server "soap"`},
		{[]string{"emulate", "oscred"}, "--listen is required"},
		{[]string{"version", "now"}, `unexpected argument "now"`},
		{[]string{"migrate"}, "plan, sync, verify or status"},
		{[]string{"migrate", "copy"}, `unknown migrate command "copy"`},
		{[]string{"migrate", "verify", "--prune"}, "--prune are sync's"},
		{[]string{"migrate", "status", "--json"}, "--json is plan's and verify's"},
		{[]string{"migrate", "sync", "--concurrency", "1000"}, "--concurrency 1000 is outside"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, code := runBin(t, nil, tc.args...)
			if code != 2 || !strings.Contains(out, tc.want) || !strings.Contains(out, "--help shows its usage") {
				t.Fatalf("%d %q, want 2 and %q", code, out, tc.want)
			}
		})
	}
}

// emulate takes its flags before or after the server's name.
func TestEmulateFlagsEitherSide(t *testing.T) {
	for _, args := range [][]string{
		{"emulate", "--listen", "127.0.0.1:0", "oscred"},
		{"emulate", "--listen=127.0.0.1:0", "ec2blob", "--flavor", "keystone"},
		{"emulate", "--flavor", "keystone", "ec2blob", "--listen", "127.0.0.1:0"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, m := startPrinting(t, regexp.MustCompile(`emulate (\S+) listening on (\S+)`), args...)
			r := bt.Do(t, "http://"+m[2], "GET", "/nothing", "", "", "")
			if r.Status != 404 || (m[1] != "oscred" && m[1] != "ec2blob") {
				t.Fatalf("%v: %d %s", m, r.Status, r.Body)
			}
		})
	}
}

// check-config and serve refuse what the config package refuses, naming the
// key or the variable, and print nothing of a secret.
func TestConfigRefusals(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        []string
		want       []string
	}{
		{"misspelt variable", "", []string{"CREDBRIDGE_UPSTREM_URL=http://127.0.0.1:1"}, []string{"CREDBRIDGE_UPSTREM_URL: no such setting", "CREDBRIDGE_UPSTREAM_URL?"}},
		{"bad duration", "upstream:\n  timeout: ten\n", nil, []string{`upstream.timeout: cannot parse "ten" as a duration`}},
		{"unknown nested key", "upstream:\n  auth:\n    tokn_file: /x\n", nil, []string{"upstream.auth.tokn_file: unknown key"}},
		{"redis without key", "cache: {redis_url: 'redis://:hunter2@127.0.0.1:6379'}\n", nil, []string{"cache.redis_url", "cache.hmac_key_file"}},
		{"public_url with query", "public_url: 'https://iam.example.com/?x=1'\n", nil, []string{"public_url:"}},
		{"public_url javascript", "", []string{"CREDBRIDGE_PUBLIC_URL=javascript:alert(1)"}, []string{"public_url:"}},
		{"every problem at once", "log: {level: loud}\nupstream: {dialect: soap}\n", []string{"CREDBRIDGE_LIMITS_MAX_CONNS=-1"},
			[]string{"log.level", "upstream.dialect", "limits.max_conns"}},
	}
	for _, tc := range tests {
		for _, cmd := range []string{"check-config", "serve"} {
			t.Run(cmd+" "+tc.name, func(t *testing.T) {
				env := append([]string{"CREDBRIDGE_LISTEN=" + freeAddr(t), "CREDBRIDGE_ADMIN_LISTEN=" + freeAddr(t)}, tc.env...)
				out, code := runBin(t, env, cmd, "--config", writeFile(t, tc.yaml))
				if code != 1 || strings.Contains(out, "hunter2") || strings.Contains(out, "unmarshal") {
					t.Fatalf("%d %s", code, out)
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("%q not in %s", w, out)
					}
				}
			})
		}
	}
}

// --offline checks that secret paths are set where required, reads none.
func TestCheckConfigOffline(t *testing.T) {
	named := writeFile(t, "upstream: {auth: {mode: token, token_file: /run/secrets/not-here}}\n")
	if out, code := runBin(t, nil, "check-config", "--config", named); code != 1 || !strings.Contains(out, "upstream.auth.token_file") {
		t.Fatalf("online: %d %s", code, out)
	}
	if out, code := runBin(t, nil, "check-config", "--offline", "--config", named); code != 0 ||
		!strings.Contains(out, "valid offline") || !strings.Contains(out, "/run/secrets/not-here") {
		t.Fatalf("offline: %d %s", code, out)
	}
	unset := writeFile(t, "upstream: {auth: {mode: token}}\ncache: {redis_url: 'redis://127.0.0.1:6379'}\n")
	out, code := runBin(t, nil, "check-config", "--config", unset, "--offline")
	if code != 1 || !strings.Contains(out, "upstream.auth.token_file: required") || !strings.Contains(out, "cache.hmac_key_file") {
		t.Fatalf("offline without paths: %d %s", code, out)
	}
}

// SIGHUP applies what it can at once — log.level, runtime.gomaxprocs, policy —
// and names the keys read only at start, which keep their old value.
func TestReloadAppliesAndNamesRestartKeys(t *testing.T) {
	dir := emulator.NewDirectory(emulator.DemoUsers())
	idn := httptest.NewServer(emulator.NewIdentity(dir).Handler())
	defer idn.Close()
	up := httptest.NewServer(emulator.NewOscred(dir).Handler())
	defer up.Close()
	listen, admin := freeAddr(t), freeAddr(t)
	base := "upstream: {url: '" + up.URL + "'}\nidentity: {url: '" + idn.URL + "'}\n"
	path := writeFile(t, "listen: "+listen+"\nadmin_listen: "+admin+"\n"+base+"log: {level: warn}\nruntime: {gomaxprocs: 1}\n")
	cmd := exec.Command(bin, "serve", "--config", path)
	var logs bt.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitFor(t, "http://"+admin+"/healthz")
	if gauge(t, admin) != "1" {
		t.Fatal("gomaxprocs 1 not applied at start")
	}
	time.Sleep(300 * time.Millisecond) // past the log writer's flush
	if strings.Contains(logs.String(), "credbridge serving") {
		t.Fatalf("an info line at level warn: %s", logs.String())
	}

	if err := os.WriteFile(path, []byte("listen: "+listen+"\nadmin_listen: "+freeAddr(t)+"\n"+base+
		"log: {level: info}\nruntime: {gomaxprocs: 2}\nlimits: {max_conns: 10}\npolicy: {rules: {list: [admin]}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, &logs, `"msg":"config reloaded"`) // info: shown only if the new level applied
	if !regexp.MustCompile(`"keys":\["admin_listen","limits.max_conns"\]`).MatchString(logs.String()) {
		t.Fatalf("restart keys not named: %s", logs.String())
	}
	if g := gauge(t, admin); g != "2" { // the old admin address keeps serving
		t.Fatalf("gomaxprocs after reload %s", g)
	}
	if r := bt.Do(t, "http://"+listen, "GET", "/v3.0/OS-CREDENTIAL/credentials", bt.Alice, "", ""); r.Status != 403 {
		t.Fatalf("reloaded policy not applied: %d %s", r.Status, r.Body)
	}
}

func waitLog(t *testing.T, logs *bt.SyncBuffer, want string) {
	t.Helper()
	for i := 0; i < 200; i++ { // 10 s: a loaded machine is slow, never wrong
		if strings.Contains(logs.String(), want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s in: %s", want, logs.String())
}

func gauge(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^credbridge_gomaxprocs (\d+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no gauge in %s", body)
	}
	return string(m[1])
}

// healthcheck --url: alive below 500, whatever the server (the emulators
// have no /healthz).
func TestHealthcheckURL(t *testing.T) {
	for _, tc := range []struct {
		status, code int
	}{{404, 0}, {200, 0}, {503, 1}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) }))
		out, code := runBin(t, nil, "healthcheck", "--url", srv.URL+"/")
		srv.Close()
		if code != tc.code {
			t.Errorf("server answering %d: exit %d %s", tc.status, code, out)
		}
	}
	if out, code := runBin(t, nil, "healthcheck", "--url", "http://"+freeAddr(t)+"/"); code != 1 {
		t.Errorf("nothing listening: exit %d %s", code, out)
	}
}

// migrate exits 2, naming the key, when its config cannot run it; its
// flags go before or after the command's name.
func TestMigrateCannotRunExit2(t *testing.T) {
	cfg := writeFile(t, "migration: {mode: shadow, secondary: {dialect: ec2blob, flavor: keystone, url: 'http://127.0.0.1:1', auth: {mode: token, token_file: /nonexistent}}}\n")
	for _, args := range [][]string{{"migrate", "verify", "--config", cfg}, {"migrate", "--config", cfg, "plan", "--json"}} {
		out, code := runBin(t, nil, args...)
		if code != 2 || !strings.Contains(out, "migration.secondary.auth.token_file") {
			t.Fatalf("%v: %d %q; want 2 naming the key", args, code, out)
		}
	}
}
