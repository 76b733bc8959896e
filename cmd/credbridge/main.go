// Command credbridge is the access-key API bridge. It only parses flags and starts
// things; see package app for the wiring.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/credbridge/credbridge/app"
	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/emulator"
	"github.com/credbridge/credbridge/logging"
	"github.com/credbridge/credbridge/telemetry"
)

// Set by the Makefile with -ldflags.
var (
	version = "dev"
	commit  = ""
)

// commands are the subcommands and the synopsis --help prints.
var commands = []struct{ name, synopsis, about string }{
	{"serve", "serve [--config FILE]", "run the proxy (FILE: $CREDBRIDGE_CONFIG, else ./config.yaml)"},
	{"demo", "demo [--listen A] [--admin-listen A] [--upstream-listen A] [--identity-listen A]",
		"reference backend + identity + proxy in one process"},
	{"emulate", "emulate oscred|ec2blob|identity --listen ADDR [--flavor ibm|keystone] [--users FILE] [--identity URL] [--close-after-answer] [--idle-timeout D]",
		"one reference server (flags before or after the server's name)"},
	{"check-config", "check-config [--config FILE] [--offline]",
		"validate and print the effective config, secrets masked (--offline: secret files not read)"},
	{"healthcheck", "healthcheck [--config FILE] [--url URL]",
		"exit 0 when the admin listener's /healthz answers 200 (for container HEALTHCHECK); --url: when URL answers below 500"},
	{"migrate", "migrate plan|sync|verify|status [--config FILE] [--json] [--dry-run] [--prune] [--concurrency N] [--primary-token-file F] [--secondary-token-file F]",
		"backfill and check the migration.secondary: plan (what sync would do), sync (copy; --prune deletes keys only the secondary has), verify (exit 0 both sides agree, 1 they differ, 2 cannot run), status (journal backlog)"},
	{"version", "version", "version, commit and Go version"},
}

// runners are what each command runs (apart from commands: their flag sets
// print commands' synopses, which would make an initialization cycle).
func runners(stderr io.Writer) map[string]func(args []string, stdout io.Writer) error {
	return map[string]func([]string, io.Writer) error{
		"serve": serve, "demo": demo, "emulate": emulate, "check-config": checkConfig,
		"healthcheck": healthcheck, "version": printVersion,
		"migrate": func(args []string, stdout io.Writer) error { return migrateCmd(args, stdout, stderr) },
	}
}

func usage() string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  credbridge %s\n      %s\n", c.synopsis, c.about)
	}
	b.WriteString("  credbridge COMMAND --help\n      that command's flags\n")
	return b.String()
}

// errHelp: --help was asked for and printed; exit 0.
var errHelp = errors.New("help printed")

// usageError is a command line that cannot run (exit 2, as flag does).
type usageError struct{ error }

// exitCode is a command's own exit status, its message already printed.
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command line; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		if len(rest) > 0 {
			name, rest = rest[0], []string{"--help"}
			break
		}
		fmt.Fprint(stdout, usage())
		return 0
	case "--version", "-v":
		name = "version"
	}
	if cmd, ok := runners(stderr)[name]; ok {
		err := cmd(rest, stdout)
		var ue usageError
		var ec exitCode
		switch {
		case err == nil, errors.Is(err, errHelp):
			return 0
		case errors.As(err, &ec):
			return int(ec)
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "credbridge %s: %v\n(credbridge %s --help shows its usage)\n", name, err, name)
			return 2
		}
		fmt.Fprintln(stderr, "credbridge:", err)
		return 1
	}
	fmt.Fprintf(stderr, "credbridge: unknown command %q\n%s", name, usage())
	return 2
}

// newFlags is the flag set of command name; parse prints its usage to stdout.
func newFlags(name string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned and printed once, by run
	fs.Usage = func() {
		for _, c := range commands {
			if c.name == name {
				fmt.Fprintf(stdout, "usage: credbridge %s\n\n%s\n", c.synopsis, c.about)
			}
		}
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses args with flags before or after the positional arguments (Go's
// flag stops at the first positional) and returns the positionals. -h and
// --help print the usage (once, to stdout) and give errHelp.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, errHelp // flag has printed fs.Usage
		} else if err != nil {
			return nil, usageError{err}
		}
		if args = fs.Args(); len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// parseNone is parse for a command that takes no positional argument.
func parseNone(fs *flag.FlagSet, args []string) error {
	pos, err := parse(fs, args)
	if err == nil && len(pos) > 0 {
		err = usageError{fmt.Errorf("unexpected argument %q", pos[0])}
	}
	return err
}

func printVersion(args []string, stdout io.Writer) error {
	if err := parseNone(newFlags("version", stdout), args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}

func versionString() string {
	return fmt.Sprintf("credbridge %s (commit %s, %s)", version, commitID(), runtime.Version())
}

// buildOptions carry the build's version and commit to telemetry
// (service.version, credbridge_build_info).
func buildOptions() telemetry.Options {
	return telemetry.Options{Version: version, Commit: commitID()}
}

// commitID is main.commit, else the VCS revision Go stamped, else "unknown".
func commitID() string {
	c := commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return c
}

// configPath resolves --config, then $CREDBRIDGE_CONFIG, then ./config.yaml.
// It is "" when none is named and ./config.yaml does not exist: defaults and
// CREDBRIDGE_* alone (SIGHUP then re-reads the environment).
func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv(config.EnvConfig); p != "" {
		return p
	}
	if _, err := os.Stat("config.yaml"); errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return "config.yaml"
}

// loadConfig loads path ("" for none); offline reads no secret file.
func loadConfig(path string, offline bool) (*config.Config, error) {
	if offline {
		return config.LoadOffline(path, os.Environ())
	}
	return config.Load(path, os.Environ())
}

// configFlag is --config, shared by the commands that load a config.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "config file (default $CREDBRIDGE_CONFIG, else ./config.yaml)")
}

func checkConfig(args []string, stdout io.Writer) error {
	fs := newFlags("check-config", stdout)
	flagPath := configFlag(fs)
	offline := fs.Bool("offline", false, "validate without reading secret files (only that their paths are set where required)")
	if err := parseNone(fs, args); err != nil {
		return err
	}
	p := configPath(*flagPath)
	cfg, err := loadConfig(p, *offline)
	if err != nil {
		return err
	}
	if p == "" {
		p = "no config file; defaults and CREDBRIDGE_* variables"
	}
	how := "valid"
	if *offline {
		how = "valid offline (secret files named, not read)"
	}
	fmt.Fprintf(stdout, "# %s: %s; effective config (secrets masked):\n%s", p, how, cfg.Masked())
	return nil
}

// applyProcess sets what the process holds rather than the bridge: the log
// level and GOMAXPROCS, at start and on every reload.
func applyProcess(cfg *config.Config, level *slog.LevelVar) {
	var l slog.Level
	_ = l.UnmarshalText([]byte(cfg.Log.Level)) // validated
	level.Set(l)
	switch n, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); {
	case cfg.Runtime.GOMAXPROCS > 0:
		runtime.GOMAXPROCS(cfg.Runtime.GOMAXPROCS)
	case err == nil && n > 0:
		runtime.GOMAXPROCS(n) // the environment's, as Go honours it (SetDefaultGOMAXPROCS would not)
	default:
		runtime.SetDefaultGOMAXPROCS() // back to Go's choice after a fixed count
	}
}

func serve(args []string, stdout io.Writer) error {
	fs := newFlags("serve", stdout)
	flagPath := configFlag(fs)
	if err := parseNone(fs, args); err != nil {
		return err
	}
	path := configPath(*flagPath)
	cfg, err := loadConfig(path, false)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	applyProcess(cfg, level)
	logw := logging.NewWriter(os.Stderr)
	defer logw.Close()
	log := logging.NewLeveled(logw, level)
	tel, err := telemetry.Setup(context.Background(), buildOptions())
	if err != nil {
		return fmt.Errorf("telemetry (OTEL_* variables): %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	}()
	rt, err := app.Start(cfg, app.Options{Log: log, Telemetry: tel, AccessLog: logw})
	if err != nil {
		return err
	}
	return serveSignals(rt, path, level, log)
}

// serveSignals reloads on SIGHUP and drains on SIGTERM/SIGINT.
func serveSignals(rt *app.Runtime, path string, level *slog.LevelVar, log *slog.Logger) error {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for {
		select {
		case err := <-rt.Done():
			return err
		case s := <-sig:
			if s == syscall.SIGHUP {
				next, err := loadConfig(path, false)
				if err == nil {
					err = rt.Reload(next)
				}
				if err != nil {
					log.Error("reload refused; the old config keeps serving", "err", err.Error())
					continue
				}
				applyProcess(next, level)
				log.Info("config reloaded", "config", path)
				continue
			}
			timeout := rt.ShutdownTimeout()
			log.Info("shutting down", "signal", s.String(), "timeout", timeout.String())
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return rt.Shutdown(ctx)
		}
	}
}

func demo(args []string, stdout io.Writer) error {
	fs := newFlags("demo", stdout)
	a := app.DemoAddrs{}
	fs.StringVar(&a.Listen, "listen", "127.0.0.1:8080", "bridge address")
	fs.StringVar(&a.Admin, "admin-listen", "127.0.0.1:9090", "admin address")
	fs.StringVar(&a.Upstream, "upstream-listen", "127.0.0.1:9001", "oscred reference backend address")
	fs.StringVar(&a.Identity, "identity-listen", "127.0.0.1:9002", "identity service address")
	fs.BoolVar(&a.Migration, "migration", false, "also mirror every key to a Keystone-flavor secondary (see --secondary-listen)")
	fs.StringVar(&a.Secondary, "secondary-listen", "127.0.0.1:9003", "Keystone secondary address (with --migration)")
	if err := parseNone(fs, args); err != nil {
		return err
	}
	tel, err := telemetry.Setup(context.Background(), buildOptions())
	if err != nil {
		return fmt.Errorf("telemetry (OTEL_* variables): %v", err)
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	rt, emus, err := app.Demo(a, stdout, logging.New(os.Stderr, "warn"), tel)
	if err != nil {
		return err
	}
	defer func() {
		for _, e := range emus {
			e.Close()
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err = <-rt.Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), rt.ShutdownTimeout())
	defer cancel()
	return errors.Join(err, rt.Shutdown(ctx))
}

func emulate(args []string, stdout io.Writer) error {
	fs := newFlags("emulate", stdout)
	listen := fs.String("listen", "", "address to listen on (required)")
	flavor := fs.String("flavor", "ibm", "ec2blob flavor: ibm or keystone")
	users := fs.String("users", "", "users file (default: the demo users)")
	identity := fs.String("identity", "", "identity service URL for tokens the users file does not hold")
	var conns emulator.Conns
	fs.BoolVar(&conns.CloseAfterAnswer, "close-after-answer", false, "close each connection after its answer without Connection: close, as uwsgi --http-socket does")
	fs.DurationVar(&conns.IdleTimeout, "idle-timeout", 0, "close keep-alive connections idle this long (0: never)")
	pos, err := parse(fs, args)
	switch {
	case err != nil:
		return err
	case len(pos) != 1:
		return usageError{errors.New("which one? one of oscred, ec2blob or identity")}
	case *listen == "":
		return usageError{errors.New("--listen is required")}
	}
	h, err := emulatorHandler(pos[0], *flavor, *users, *identity)
	if err != nil {
		return err
	}
	e, err := app.ServeEmulator(*listen, h, conns)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "credbridge emulate %s listening on %s\n", pos[0], e.Addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return e.Close()
}

func emulatorHandler(kind, flavor, users, identity string) (http.Handler, error) {
	list := emulator.DemoUsers()
	if users != "" {
		var err error
		if list, err = emulator.LoadUsers(users); err != nil {
			return nil, err
		}
	}
	dir := emulator.NewDirectory(list)
	dir.RemoteIdentity = identity
	switch kind {
	case "oscred":
		return emulator.NewOscred(dir).Handler(), nil
	case "ec2blob":
		if flavor != "ibm" && flavor != "keystone" {
			return nil, fmt.Errorf("emulate: --flavor %q is not ibm or keystone", flavor)
		}
		return emulator.NewEC2Blob(dir, flavor == "keystone").Handler(), nil
	case "identity":
		return emulator.NewIdentity(dir).Handler(), nil
	}
	return nil, usageError{fmt.Errorf("unknown server %q (oscred, ec2blob or identity)", kind)}
}

// healthcheck asks the admin listener of the configured bridge whether it lives;
// distroless images have no curl. --url probes any HTTP server instead (the
// emulators, which have no /healthz): alive when it answers below 500.
func healthcheck(args []string, stdout io.Writer) error {
	fs := newFlags("healthcheck", stdout)
	flagPath := configFlag(fs)
	url := fs.String("url", "", "probe this URL instead of the bridge's admin listener")
	if err := parseNone(fs, args); err != nil {
		return err
	}
	if *url != "" {
		return probe(*url, func(code int) bool { return code < 500 })
	}
	cfg, err := loadConfig(configPath(*flagPath), true) // it needs the admin address, not the secrets
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.AdminListen)
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return probe("http://"+net.JoinHostPort(host, port)+"/healthz", func(code int) bool { return code == http.StatusOK })
}

func probe(url string, alive func(code int) bool) error {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if !alive(resp.StatusCode) {
		return fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	return nil
}
