// Command credbridge is the access-key API bridge. It only parses flags and starts
// things; see package app for the wiring.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
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

const usage = `usage:
  credbridge serve [--config FILE]        run the proxy (FILE: $CREDBRIDGE_CONFIG, else ./config.yaml)
  credbridge demo                         reference backend + identity + proxy in one process
  credbridge emulate oscred|ec2blob|identity --listen ADDR [--flavor ibm|keystone] [--users FILE] [--identity URL]
  credbridge check-config [--config FILE] validate and print the effective config, secrets masked
  credbridge healthcheck [--config FILE]  exit 0 when the admin listener's /healthz answers 200 (for container HEALTHCHECK)
  credbridge healthcheck --url URL        exit 0 when URL answers below 500 (the emulators' compose health check)
  credbridge version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = serve(args)
	case "demo":
		err = demo(args)
	case "emulate":
		err = emulate(args)
	case "check-config":
		err = checkConfig(args, os.Stdout)
	case "healthcheck":
		err = healthcheck(args)
	case "version", "--version", "-v":
		fmt.Println(versionString())
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "credbridge: unknown command %q\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "credbridge:", err)
		os.Exit(1)
	}
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
func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv("CREDBRIDGE_CONFIG"); p != "" {
		return p
	}
	return "config.yaml"
}

// loadConfig resolves and loads the config. The path is "" when no file is
// used: defaults and CREDBRIDGE_* alone (SIGHUP then re-reads the environment).
func loadConfig(args []string, name string) (*config.Config, string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", "", "config file")
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	p := configPath(*path)
	if *path == "" && os.Getenv("CREDBRIDGE_CONFIG") == "" {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			// No file named anywhere and none here: defaults and CREDBRIDGE_* only.
			cfg, err := config.Load("", os.Environ())
			return cfg, "", err
		}
	}
	cfg, err := config.Load(p, os.Environ())
	return cfg, p, err
}

func checkConfig(args []string, w io.Writer) error {
	cfg, p, err := loadConfig(args, "check-config")
	if err != nil {
		return err
	}
	if p == "" {
		p = "no config file; defaults and CREDBRIDGE_* variables"
	}
	fmt.Fprintf(w, "# %s: valid; effective config (secrets masked):\n%s", p, cfg.Masked())
	return nil
}

func serve(args []string) error {
	cfg, path, err := loadConfig(args, "serve")
	if err != nil {
		return err
	}
	if cfg.Runtime.GOMAXPROCS > 0 {
		runtime.GOMAXPROCS(cfg.Runtime.GOMAXPROCS)
	}
	logw := logging.NewWriter(os.Stderr)
	defer logw.Close()
	log := logging.New(logw, cfg.Log.Level)
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
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for {
		select {
		case err := <-rt.Done():
			return err
		case s := <-sig:
			if s == syscall.SIGHUP {
				next, err := config.Load(path, os.Environ())
				if err == nil {
					err = rt.Reload(next)
				}
				if err != nil {
					log.Error("reload refused; the old config keeps serving", "err", err.Error())
				} else {
					log.Info("config reloaded", "config", path)
				}
				continue
			}
			log.Info("shutting down", "signal", s.String(), "timeout", cfg.ShutdownTimeout.String())
			ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			return rt.Shutdown(ctx)
		}
	}
}

func demo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	a := app.DemoAddrs{}
	fs.StringVar(&a.Listen, "listen", "127.0.0.1:8080", "bridge address")
	fs.StringVar(&a.Admin, "admin-listen", "127.0.0.1:9090", "admin address")
	fs.StringVar(&a.Upstream, "upstream-listen", "127.0.0.1:9001", "oscred reference backend address")
	fs.StringVar(&a.Identity, "identity-listen", "127.0.0.1:9002", "identity service address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tel, err := telemetry.Setup(context.Background(), buildOptions())
	if err != nil {
		return fmt.Errorf("telemetry (OTEL_* variables): %v", err)
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	rt, emus, err := app.Demo(a, os.Stdout, logging.New(os.Stderr, "warn"), tel)
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

func emulate(args []string) error {
	if len(args) < 1 {
		return errors.New("emulate: which one? oscred, ec2blob or identity")
	}
	kind := args[0]
	fs := flag.NewFlagSet("emulate", flag.ContinueOnError)
	listen := fs.String("listen", "", "address to listen on (required)")
	flavor := fs.String("flavor", "ibm", "ec2blob flavor: ibm or keystone")
	users := fs.String("users", "", "users file (default: the demo users)")
	identity := fs.String("identity", "", "identity service URL for tokens the users file does not hold")
	var conns emulator.Conns
	fs.BoolVar(&conns.CloseAfterAnswer, "close-after-answer", false, "close each connection after its answer without Connection: close, as uwsgi --http-socket does")
	fs.DurationVar(&conns.IdleTimeout, "idle-timeout", 0, "close keep-alive connections idle this long (0: never)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *listen == "" {
		return errors.New("emulate: --listen is required")
	}
	list := emulator.DemoUsers()
	if *users != "" {
		var err error
		if list, err = emulator.LoadUsers(*users); err != nil {
			return err
		}
	}
	dir := emulator.NewDirectory(list)
	dir.RemoteIdentity = *identity
	var e *app.Emulated
	var err error
	switch kind {
	case "oscred":
		e, err = app.ServeEmulator(*listen, emulator.NewOscred(dir).Handler(), conns)
	case "ec2blob":
		if *flavor != "ibm" && *flavor != "keystone" {
			return fmt.Errorf("emulate: --flavor %q is not ibm or keystone", *flavor)
		}
		e, err = app.ServeEmulator(*listen, emulator.NewEC2Blob(dir, *flavor == "keystone").Handler(), conns)
	case "identity":
		e, err = app.ServeEmulator(*listen, emulator.NewIdentity(dir).Handler(), conns)
	default:
		return fmt.Errorf("emulate: unknown server %q (oscred, ec2blob or identity)", kind)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "credbridge emulate %s listening on %s\n", kind, e.Addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return e.Close()
}

// healthcheck asks the admin listener of the configured bridge whether it lives;
// distroless images have no curl.
// --url probes any HTTP server instead (the emulators, which have no /healthz).
func healthcheck(args []string) error {
	if len(args) == 2 && args[0] == "--url" {
		return probe(args[1], func(code int) bool { return code < 500 })
	}
	cfg, _, err := loadConfig(args, "healthcheck")
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
