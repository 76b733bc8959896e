package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/migrate"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"github.com/tidwall/gjson"
	"golang.org/x/term"
)

// MigrateOptions are `credbridge migrate`'s flags.
type MigrateOptions struct {
	// Command: plan | sync | verify | status.
	Command             string
	JSON, DryRun, Prune bool
	// Concurrency bounds the calls in flight toward each side.
	Concurrency int
	// PrimaryTokenFile / SecondaryTokenFile hold the token a passthrough side
	// is called with (an administrator's: it lists every user's keys).
	PrimaryTokenFile, SecondaryTokenFile string
	Stdout, Stderr                       io.Writer
}

// Exit codes of the migrate commands (migration.md "Command line").
const (
	ExitOK        = 0 // converged, no divergence
	ExitDiffers   = 1 // something remains, divergences
	ExitCannotRun = 2 // config, an unreachable side, a journal that does not open
)

// Migrate runs one migrate command and returns its exit code; every error is
// printed to Stderr once.
func Migrate(ctx context.Context, cfg *config.Config, o MigrateOptions) int {
	if o.Concurrency <= 0 {
		o.Concurrency = migrate.DefaultConcurrency
	}
	code, err := runMigrate(ctx, cfg, o)
	if err != nil {
		fmt.Fprintf(o.Stderr, "credbridge migrate %s: %v\n", o.Command, err)
	}
	return code
}

func runMigrate(ctx context.Context, cfg *config.Config, o MigrateOptions) (int, error) {
	if o.Command == "status" {
		return migrateStatus(ctx, cfg, o)
	}
	if cfg.Migration.Secondary.Dialect == "oscred" && o.Command != "verify" {
		// oscred mints its own key pair on create: a copy would be another key,
		// and the client's AK/SK would not work on the new cloud.
		if o.Command == "sync" {
			return ExitCannotRun, errors.New("migration.secondary.dialect: oscred makes its own key pairs, so sync cannot copy one (verify compares; owners re-key through the bridge)")
		}
		fmt.Fprintln(o.Stderr, "credbridge migrate plan: the secondary is oscred, which makes its own key pairs: sync cannot copy the creates below")
	}
	env, err := openMigration(cfg, o)
	if err != nil {
		return ExitCannotRun, err
	}
	defer env.close()
	if o.Command == "sync" && !o.DryRun {
		if err := env.openSyncJournal(); err != nil {
			return ExitCannotRun, err
		}
		res, err := env.resume(ctx)
		if err != nil {
			return ExitCannotRun, err
		}
		return env.sync(ctx, res)
	}
	inv, err := env.read(ctx)
	if err != nil {
		return ExitCannotRun, err
	}
	switch o.Command {
	case "plan":
		return ExitOK, env.printPlan(env.plan(inv))
	case "sync": // --dry-run: the plan, judged as sync would be
		p := env.plan(inv)
		return converged(p.Converged()), env.printPlan(p)
	case "verify":
		r := env.verify(inv)
		return converged(len(r.Divergences) == 0), env.printReport(r)
	}
	return ExitCannotRun, fmt.Errorf("unknown command %q", o.Command)
}

func converged(ok bool) int {
	if ok {
		return ExitOK
	}
	return ExitDiffers
}

// migration is what the commands work with: both sides, the user map, the
// fingerprint key, and (for sync) the mirror over the sync journal.
type migration struct {
	cfg                *config.Config
	o                  MigrateOptions
	sides              migrate.Sides
	primary, secondary *backend
	key                []byte
	fp                 migrate.Fingerprinter
	users              []string
	journal            *migrate.FileJournal
	mirror             *migrate.Mirror
	throttled          atomic.Int64 // Limited calls it from every worker
}

func openMigration(cfg *config.Config, o MigrateOptions) (*migration, error) {
	mc := cfg.Migration
	if err := mc.ValidateSides(); err != nil {
		return nil, err
	}
	if mc.JournalKeyFile == "" {
		return nil, errors.New("migration.journal_key_file: required by credbridge migrate (it keys the secret fingerprints and seals secrets in the sync journal)")
	}
	key, err := migrate.ReadKey(mc.JournalKeyFile)
	if err == nil && len(key) < migrate.MinJournalKey {
		err = fmt.Errorf("%s holds %d bytes; at least %d are needed", mc.JournalKeyFile, len(key), migrate.MinJournalKey)
	}
	if err != nil {
		return nil, fmt.Errorf("migration.journal_key_file: %v", err)
	}
	m := &migration{cfg: cfg, o: o, key: key, fp: migrate.NewFingerprinter(key)}
	if m.primary, err = newPrimary(cfg, o.PrimaryTokenFile); err != nil {
		return nil, err
	}
	if m.secondary, err = newBackend(mc, o.SecondaryTokenFile); err != nil {
		return nil, err
	}
	if mc.UserMapFile != "" {
		if m.sides.Users, err = migrate.LoadUserMap(mc.UserMapFile); err != nil {
			return nil, fmt.Errorf("migration.user_map_file: %v", err)
		}
	}
	count := func() { m.throttled.Add(1) }
	pl, sl := migrate.NewLimited(m.primary, o.Concurrency), migrate.NewLimited(m.secondary, o.Concurrency)
	pl.Throttled, sl.Throttled = count, count
	m.sides.Primary, m.sides.Secondary, m.sides.Concurrency = pl, sl, 2*o.Concurrency
	return m, nil
}

func (m *migration) close() {
	if m.journal != nil {
		_ = m.journal.Close()
	}
}

// newPrimary is the client toward upstream, with its auth or --primary-token-file.
func newPrimary(cfg *config.Config, tokenFile string) (*backend, error) {
	po, err := proxy.OptionsFrom(cfg)
	if err != nil {
		return nil, err
	}
	uo := po.Upstream
	uo.Peer = "primary"
	c, err := upstream.New(uo)
	if err != nil {
		return nil, fmt.Errorf("upstream.url: %v", err)
	}
	sec, err := cfg.Secrets()
	if err != nil {
		return nil, err
	}
	idBase, err := policy.NewTransport(cfg.Identity) // the service login goes through identity.tls, as serve's does
	if err != nil {
		return nil, err
	}
	b := &backend{c: c, url: cfg.Upstream.URL, tokens: upstreamTokens(cfg, sec, idBase)}
	if cfg.Upstream.Auth.Mode == "passthrough" {
		if b.tokens, err = tokenFromFile("upstream.auth.mode passthrough needs --primary-token-file", tokenFile); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func tokenFromFile(missing, path string) (upstream.TokenSource, error) {
	if path == "" {
		return nil, errors.New(missing)
	}
	t, err := config.ReadSecret(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return upstream.StaticToken(t), nil
}

// read lists the users, then every user's keys on both sides.
func (m *migration) read(ctx context.Context) (*migrate.Inventory, error) {
	users, err := m.usersToRead(ctx)
	if err != nil {
		return nil, err
	}
	m.users = users
	bar := newProgress(m.o.Stderr, "reading keys", len(users))
	defer bar.finish()
	s := m.sides
	s.Progress = bar.set
	return migrate.ReadAll(ctx, s, users)
}

func (m *migration) plan(inv *migrate.Inventory) *migrate.Plan {
	return inv.Plan(m.fp, m.sides.Users, migrate.EndpointOf(m.primary), migrate.EndpointOf(m.secondary))
}

func (m *migration) verify(inv *migrate.Inventory) migrate.Report {
	return inv.Verify(m.fp, m.sides.Users, migrate.EndpointOf(m.primary), migrate.EndpointOf(m.secondary))
}

// usersToRead are the identity service's users, and with a user map its
// users too: a user the map leaves out who holds keys is reported
// (unmapped_user), and their keys are never taken for secondary-only. With a
// map, an identity service that cannot list is a warning, not a failure.
func (m *migration) usersToRead(ctx context.Context) ([]string, error) {
	mapped := m.sides.Users.Users()
	listed, err := m.identityUsers(ctx)
	switch {
	case mapped == nil:
		return listed, err
	case err != nil:
		fmt.Fprintf(m.o.Stderr, "credbridge migrate: %v; reading the users of migration.user_map_file only (keys of users it leaves out are not seen)\n", err)
		return mapped, nil
	}
	seen := make(map[string]bool, len(mapped))
	for _, u := range mapped {
		seen[u] = true
	}
	for _, u := range listed {
		if !seen[u] {
			mapped = append(mapped, u)
		}
	}
	sort.Strings(mapped)
	return mapped, nil
}

// identityUsers lists the identity service's users (GET /v3/users, following
// Keystone's links.next), with identity.service_token_file's token, else the
// primary's.
func (m *migration) identityUsers(ctx context.Context) ([]string, error) {
	id := m.cfg.Identity
	tlsc, err := id.TLS.ForURL(id.URL)
	if err != nil {
		return nil, fmt.Errorf("identity.tls: %v", err)
	}
	c, err := upstream.New(upstream.Options{Peer: "identity service", Side: translate.SideKeystone, URL: id.URL, Timeout: id.Timeout, MaxConns: 2, TLS: tlsc})
	if err != nil {
		return nil, fmt.Errorf("identity.url: %v", err)
	}
	sec, err := m.cfg.Secrets()
	if err != nil {
		return nil, err
	}
	tok := sec.IdentityServiceToken
	if tok == "" {
		if tok, err = m.primary.tokens.UpstreamToken(ctx, ""); err != nil {
			return nil, fmt.Errorf("identity service: a token to list users with: %v", err)
		}
	}
	prefix := strings.TrimRight(mustPath(id.URL), "/")
	var users []string
	path, query := "/v3/users", ""
	for pages := 0; path != "" && pages < 10000; pages++ {
		a, terr := c.Do(upstream.Request{Method: "GET", Path: path, Query: query, Token: tok})
		if terr != nil {
			return nil, fmt.Errorf("identity service: listing users: %v", terr)
		}
		body, st := string(a.Body), a.Status
		a.Release()
		if st != 200 || !gjson.Get(body, "users").IsArray() {
			return nil, fmt.Errorf("identity service: listing users: answered %d (the token needs an administrator's role)", st)
		}
		gjson.Get(body, "users.#.id").ForEach(func(_, v gjson.Result) bool {
			users = append(users, v.String())
			return true
		})
		path, query = "", ""
		if next := gjson.Get(body, "links.next"); next.Type == gjson.String {
			if u, err := url.Parse(next.Str); err == nil {
				path, query = strings.TrimPrefix(u.Path, prefix), u.RawQuery
			}
		}
	}
	sort.Strings(users)
	return users, nil
}

func mustPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Path
}

// openSyncJournal opens the bbolt file sync journals in, and the mirror that
// applies through it: the same entry, sealing and apply code as the live mirror.
func (m *migration) openSyncJournal() error {
	mc := m.cfg.Migration
	j, err := migrate.OpenFile(mc.SyncJournalPath())
	if err != nil {
		return fmt.Errorf("migration.sync_journal: %s: %v (is another migrate sync running?)", mc.SyncJournalPath(), err)
	}
	m.journal = j
	mo := migrate.Options{Config: mc, Backend: m.sides.Secondary, Journal: j, Key: m.key, Users: m.sides.Users,
		Log: slog.New(slog.NewTextHandler(m.o.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	mo.Config.Mode = migrate.ModeMirror
	m.mirror, err = migrate.New(mo)
	return err
}

func (m *migration) resume(ctx context.Context) (migrate.SyncResult, error) {
	n, _, err := m.journal.Stats(ctx)
	if err != nil || n == 0 {
		return migrate.SyncResult{}, err
	}
	fmt.Fprintf(m.o.Stderr, "sync: %d writes journaled by an interrupted run; applying them first\n", n)
	res, err := m.mirror.Resume(ctx, migrate.SyncOptions{Workers: 4 * m.o.Concurrency, Primary: m.sides.Primary})
	out := migrate.SyncResult{Journaled: res.Journaled}
	out.Add(res)
	return out, err
}

// sync reads, plans, and applies; it exits 0 only when nothing remains.
// Entries an earlier run left were applied first (res); those still stuck
// get one more pass at the end, when this run's prunes may have freed the
// quota they wait for.
func (m *migration) sync(ctx context.Context, res migrate.SyncResult) (int, error) {
	inv, err := m.read(ctx)
	if err != nil {
		return ExitCannotRun, err
	}
	p := m.plan(inv)
	bar := newProgress(m.o.Stderr, "syncing", p.Actions(m.o.Prune))
	run, err := m.mirror.Sync(ctx, p, migrate.SyncOptions{Prune: m.o.Prune, Workers: 4 * m.o.Concurrency, Progress: bar.set, Journaled: res.Journaled, Primary: m.sides.Primary})
	bar.finish()
	res.Created, res.Updated, res.Pruned = run.Created, run.Updated, run.Pruned
	res.Undone += run.Undone
	res.Failed = append(res.Failed, run.Failed...)
	res.Waiting = append(res.Waiting, run.Waiting...)
	res.Pending += run.Pending
	if err == nil && len(res.Journaled) > 0 {
		var last migrate.SyncResult
		last, err = m.mirror.Resume(ctx, migrate.SyncOptions{Workers: 4 * m.o.Concurrency, Primary: m.sides.Primary})
		res.Add(last)
		res.Pending = last.Pending // all that is left in the journal
	}
	printSyncSummary(m.o.Stdout, p, res, m.o.Prune, m.throttled.Load())
	if err != nil {
		return ExitCannotRun, err
	}
	left := len(p.NeedsRekey) + len(p.Conflicts) + len(p.UnmappedUsers) + len(res.Failed) + res.Pending
	if !m.o.Prune {
		left += len(p.SecondaryOnly)
	}
	return converged(left == 0), nil
}

// isTerminal: w is a terminal (not a file, pipe or /dev/null), so a progress
// bar may redraw on it.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
