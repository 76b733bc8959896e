package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/credbridge/credbridge/app"
)

// migrateCmd is `credbridge migrate plan|sync|verify|status`; app.Migrate does
// the work and gives the exit code (0 agree/converged, 1 differ/remains, 2
// cannot run).
func migrateCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", stdout)
	flagPath := configFlag(fs)
	o := app.MigrateOptions{Stdout: stdout, Stderr: stderr}
	fs.BoolVar(&o.JSON, "json", false, "plan, verify: print one JSON object (stable; fingerprints, never secrets)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "sync: print the plan and write nothing")
	fs.BoolVar(&o.Prune, "prune", false, "sync: delete keys that exist only on the secondary")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "calls in flight toward each side (default 8; 429 and 503 answers are waited out)")
	fs.StringVar(&o.PrimaryTokenFile, "primary-token-file", "", "token for a passthrough upstream (an administrator's)")
	fs.StringVar(&o.SecondaryTokenFile, "secondary-token-file", "", "token for a passthrough migration.secondary (an administrator's)")
	pos, err := parse(fs, args)
	switch {
	case err != nil:
		return err
	case len(pos) != 1:
		return usageError{errors.New("which one? plan, sync, verify or status")}
	case pos[0] != "plan" && pos[0] != "sync" && pos[0] != "verify" && pos[0] != "status":
		return usageError{fmt.Errorf("unknown migrate command %q: plan, sync, verify or status", pos[0])}
	case o.Concurrency < 0 || o.Concurrency > 256:
		return usageError{fmt.Errorf("--concurrency %d is outside 1..256", o.Concurrency)}
	case (o.DryRun || o.Prune) && pos[0] != "sync", o.JSON && pos[0] != "plan" && pos[0] != "verify":
		return usageError{errors.New("--dry-run and --prune are sync's; --json is plan's and verify's")}
	}
	o.Command = pos[0]
	cfg, err := loadConfig(configPath(*flagPath), false)
	if err != nil {
		fmt.Fprintf(stderr, "credbridge migrate %s: %v\n", o.Command, err)
		return exitCode(app.ExitCannotRun)
	}
	// SIGINT/SIGTERM stop a sync between writes: what is journaled stays for the next run.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if code := app.Migrate(ctx, cfg, o); code != 0 {
		return exitCode(code)
	}
	return nil
}
