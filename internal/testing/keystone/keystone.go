// Package keystone starts a real OpenStack Keystone for tests: Debian's
// keystone package on MariaDB, served by uwsgi's --http-socket as packaged
// deployments serve it, on free loopback ports in a scratch folder. One per
// test package (Shared); `make deps` installs the packages.
//
// Why MariaDB and not SQLite: Keystone on SQLite fails concurrent writes with
// "database is locked". Why uwsgi: it closes the connection after each answer
// without Connection: close (Debian's uwsgi ini strips Content-Length), the
// behaviour that broke the bridge's pool (issue 13); a kinder server would hide it.
package keystone

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries the harness runs; `make deps` installs the packages holding them
// (keystone, mariadb-server, python3-pymysql, uwsgi-plugin-python3).
var binaries = []string{"keystone-manage", "/usr/bin/keystone-wsgi-public", "mariadb-install-db", "/usr/sbin/mariadbd", "uwsgi"}

// User is a Keystone user with a project of its own, member there.
type User struct {
	Name, ID, Password, ProjectID string
	// Token is project-scoped, valid for an hour (Keystone's default).
	Token string
}

// Keystone is a running Keystone and its database.
type Keystone struct {
	// URL is the service's root (http://127.0.0.1:port); /v3 is under it.
	URL string
	// Admin was bootstrapped (role admin on project admin); Alice and Bob are
	// plain users, each member of a project of their own.
	Admin, Alice, Bob User
	// Started says how long the start took; Phases how long each step.
	Started time.Duration
	Phases  []string

	dir   string
	procs []*exec.Cmd
}

var (
	shared    *Keystone
	sharedErr error
	once      sync.Once
)

// Shared starts the package's Keystone on first use and fails t if it cannot;
// call StopShared from TestMain once the tests ran.
func Shared(t testing.TB) *Keystone {
	t.Helper()
	once.Do(func() { shared, sharedErr = Start() })
	if sharedErr != nil {
		t.Fatalf("real Keystone: %v", sharedErr)
	}
	return shared
}

// StopShared stops the shared Keystone, if one was started.
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
}

// Start starts MariaDB and Keystone and creates the users.
func Start() (k *Keystone, err error) {
	begin := time.Now()
	for _, b := range binaries {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("%s missing: run `make deps` (Debian packages keystone mariadb-server python3-pymysql uwsgi-plugin-python3)", b)
		}
	}
	dir, err := os.MkdirTemp("", "credbridge-keystone-")
	if err != nil {
		return nil, err
	}
	k = &Keystone{dir: dir}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, k.logs())
			k.Stop()
			k = nil
		}
	}()
	mark := func(what string) {
		k.Phases = append(k.Phases, fmt.Sprintf("%s %s", what, time.Since(begin).Round(100*time.Millisecond)))
	}
	if err = k.startDB(); err != nil {
		return k, fmt.Errorf("mariadb: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return k, err
	}
	k.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	if err = k.configure(); err != nil {
		return k, err
	}
	mark("mariadb")
	// uwsgi's start (Python importing Keystone, no query) runs beside
	// db_sync and bootstrap, which need the database only.
	if err = k.serve(port); err != nil {
		return k, err
	}
	if err = k.manage("db_sync"); err != nil {
		return k, err
	}
	mark("db_sync")
	if err = k.bootstrap(); err != nil {
		return k, err
	}
	mark("bootstrap")
	if err = k.ready(); err != nil {
		return k, err
	}
	mark("uwsgi")
	if err = k.makeUsers(); err != nil {
		return k, err
	}
	mark("users")
	k.Started = time.Since(begin)
	return k, nil
}

// Stop ends the processes the harness started (uwsgi, then MariaDB) and
// removes the scratch folder.
func (k *Keystone) Stop() {
	for i := len(k.procs) - 1; i >= 0; i-- {
		p := k.procs[i]
		// Each runs in a process group of its own: uwsgi's workers go with it.
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	k.procs = nil
	_ = os.RemoveAll(k.dir)
}

func (k *Keystone) path(name string) string { return filepath.Join(k.dir, name) }

// spawn starts a long-running child in its own process group, killed if the
// test binary dies first.
func (k *Keystone) spawn(log string, name string, args ...string) error {
	out, err := os.Create(k.path(log))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = k.dir, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	k.procs = append(k.procs, cmd)
	return nil
}

// run runs a command to its end, its output into log.
func (k *Keystone) run(log string, name string, args ...string) error {
	return k.runEnv(log, nil, name, args...)
}

// runEnv is run with env added to the process's environment.
func (k *Keystone) runEnv(log string, env []string, name string, args ...string) error {
	out, err := os.OpenFile(k.path(log), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = k.dir, out, out
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// startDB creates a datadir and starts mariadbd on a unix socket and a free
// loopback port. Durability is off (nosync, no doublewrite): a test database.
func (k *Keystone) startDB() error {
	osUser := "root"
	if u, err := user.Current(); err == nil {
		osUser = u.Username
	}
	// A temp dir of its own: MariaDB's default is /tmp, where two harnesses
	// at once (two test runs on one machine) trip over each other's
	// #sql-temptable files and mariadb-install-db aborts.
	tmp := k.path("tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	tuning := []string{"--skip-name-resolve", "--innodb-flush-method=nosync", "--innodb-doublewrite=0",
		"--innodb-log-file-size=16M", "--innodb-buffer-pool-size=64M", "--tmpdir=" + tmp}
	// The OS user gets a passwordless account over the socket (unix_socket auth).
	install := append([]string{"--no-defaults", "--datadir=" + k.path("db"), "--user=" + osUser,
		"--auth-root-authentication-method=socket", "--skip-test-db"}, tuning...)
	if err := k.run("mariadb-install.log", "mariadb-install-db", install...); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	init := k.path("init.sql")
	if err := os.WriteFile(init, []byte("CREATE DATABASE IF NOT EXISTS keystone;\n"), 0o600); err != nil {
		return err
	}
	args := append([]string{"--no-defaults", "--datadir=" + k.path("db"), "--socket=" + k.path("mysql.sock"),
		"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--pid-file=" + k.path("mariadb.pid"),
		"--skip-log-bin", "--init-file=" + init, "--log-error=" + k.path("mariadb.err")}, tuning...)
	if osUser == "root" {
		args = append(args, "--user=root") // mariadbd refuses to run as root otherwise
	}
	if err := k.spawn("mariadb.out", "/usr/sbin/mariadbd", args...); err != nil {
		return err
	}
	return waitFor(30*time.Second, func() error {
		c, err := net.Dial("unix", k.path("mysql.sock"))
		if err == nil {
			c.Close()
		}
		return err
	})
}

// configure writes keystone.conf and the fernet and credential key
// repositories (what fernet_setup and credential_setup write: two Fernet keys
// each, 1 the primary, 0 the staged one — two fewer Python starts).
func (k *Keystone) configure() error {
	osUser := "root"
	if u, err := user.Current(); err == nil {
		osUser = u.Username
	}
	conf := fmt.Sprintf(`[DEFAULT]
log_file = %[1]s/keystone.log
[database]
connection = mysql+pymysql://%[2]s@localhost/keystone?unix_socket=%[1]s/mysql.sock
[identity]
# bcrypt's fewest rounds: logins are a test's, not an attacker's target
password_hash_rounds = 4
[fernet_tokens]
key_repository = %[1]s/fernet-keys
[fernet_receipts]
key_repository = %[1]s/fernet-keys
[credential]
key_repository = %[1]s/credential-keys
caching = false
[token]
provider = fernet
# Each worker process caches tokens, roles and catalog in its own memory
# (a credential request validates its token first: most of its cost). Not
# credentials: a worker would answer a key as it was before the other
# worker changed it.
[cache]
enabled = true
backend = dogpile.cache.memory
`, k.dir, osUser)
	if err := os.WriteFile(k.path("keystone.conf"), []byte(conf), 0o600); err != nil {
		return err
	}
	for _, repo := range []string{"fernet-keys", "credential-keys"} {
		if err := os.Mkdir(k.path(repo), 0o700); err != nil {
			return err
		}
		for _, name := range []string{"0", "1"} {
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(k.path(repo), name), []byte(base64.URLEncoding.EncodeToString(key)), 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *Keystone) manage(args ...string) error {
	return k.manageEnv(nil, args...)
}

func (k *Keystone) manageEnv(env []string, args ...string) error {
	return k.runEnv("keystone-manage.log", env, "keystone-manage", append([]string{"--config-file", k.path("keystone.conf")}, args...)...)
}

// bootstrap creates the admin. Its password goes in OS_BOOTSTRAP_PASSWORD,
// not argv: a random one beginning with "-" (one in 64) was read by
// keystone-manage's argument parser as an option (exit status 2), and argv is
// what ps and the error message show.
func (k *Keystone) bootstrap() error {
	k.Admin = User{Name: "admin", Password: randomPassword()}
	v3 := k.URL + "/v3"
	return k.manageEnv([]string{"OS_BOOTSTRAP_PASSWORD=" + k.Admin.Password}, "bootstrap", "--bootstrap-username", "admin",
		"--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
		"--bootstrap-admin-url", v3, "--bootstrap-public-url", v3, "--bootstrap-internal-url", v3,
		"--bootstrap-region-id", "RegionOne")
}

// serve starts Keystone's public application under uwsgi with the options of
// Debian's /etc/keystone/keystone-uwsgi.ini that shape its HTTP (buffer size,
// Content-Length removed, lazy apps, threads), fewer processes, on port.
func (k *Keystone) serve(port int) error {
	err := k.spawn("uwsgi.log", "uwsgi", "--plugin", "python3",
		"--http-socket", "127.0.0.1:"+strconv.Itoa(port),
		"--wsgi-file", "/usr/bin/keystone-wsgi-public",
		// Not --lazy-apps (Debian's ini has it): the master imports Keystone
		// once and forks, halving the start's Python work on a shared machine.
		"--master", "--processes", "2", "--threads", "4", "--enable-threads",
		"--buffer-size", "65535", "--rem-header", "Content-Length", "--die-on-term", "--need-app",
		"--env", "OS_KEYSTONE_CONFIG_DIR="+k.dir, "--env", "OS_KEYSTONE_CONFIG_FILES=keystone.conf")
	return err
}

// ready waits for Keystone to answer GET /v3.
func (k *Keystone) ready() error {
	return waitFor(90*time.Second, func() error {
		resp, err := direct.Get(k.URL + "/v3")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v3: %d", resp.StatusCode)
		}
		return nil
	})
}

// logs is the tail of each log in the scratch folder, for a failed start.
func (k *Keystone) logs() string {
	var b strings.Builder
	for _, name := range []string{"mariadb-install.log", "mariadb.err", "keystone-manage.log", "uwsgi.log", "keystone.log"} {
		raw, err := os.ReadFile(k.path(name))
		if err != nil || len(raw) == 0 {
			continue
		}
		if len(raw) > 3000 {
			raw = raw[len(raw)-3000:]
		}
		fmt.Fprintf(&b, "\n--- %s (tail)\n%s", name, raw)
	}
	return b.String()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitFor(limit time.Duration, ready func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomPassword() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed"))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// BridgeEnv is the configuration (CREDBRIDGE_* variables) of a bridge in
// front of k: upstream ec2blob flavor keystone and identity service both k,
// the caller's own token sent upstream, on free loopback ports.
func (k *Keystone) BridgeEnv() []string {
	return []string{"CREDBRIDGE_LISTEN=127.0.0.1:0", "CREDBRIDGE_ADMIN_LISTEN=127.0.0.1:0",
		"CREDBRIDGE_UPSTREAM_DIALECT=ec2blob", "CREDBRIDGE_UPSTREAM_FLAVOR=keystone", "CREDBRIDGE_UPSTREAM_URL=" + k.URL,
		"CREDBRIDGE_UPSTREAM_AUTH_MODE=passthrough", "CREDBRIDGE_IDENTITY_URL=" + k.URL,
		// Keystone answers in tens of milliseconds alone, in seconds on a busy
		// 2-core CI machine; the defaults (3 s, 10 s) would make those 503s.
		"CREDBRIDGE_IDENTITY_TIMEOUT=60s", "CREDBRIDGE_UPSTREAM_TIMEOUT=60s"}
}
