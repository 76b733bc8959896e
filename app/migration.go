package app

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/migrate"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
)

// The migration section is read at start: the mirror, its journal and worker
// outlive reloads (a journal file is locked by the process that opened it), so
// changing migration: needs a restart.

// backend is migrate.Backend over an upstream.Client and its service token:
// the secondary of the mirror, and either side for the migrate commands.
type backend struct {
	c      *upstream.Client
	tokens upstream.TokenSource
	url    string
}

// NewSecondary is the client toward migration.secondary.
func NewSecondary(mc migrate.Config) (migrate.Backend, error) { return newBackend(mc, "") }

// newBackend is the client toward migration.secondary; tokenFile, when set,
// replaces a passthrough secondary's caller tokens (the migrate commands
// have no caller).
func newBackend(mc migrate.Config, tokenFile string) (*backend, error) {
	s := mc.Secondary
	c, err := upstream.New(upstream.Options{Peer: "secondary", Side: upstream.SideOf(s.Dialect, s.Flavor),
		URL: s.URL, Timeout: s.Timeout, MaxConns: s.MaxConns})
	if err != nil {
		return nil, fmt.Errorf("migration.secondary.url: %v", err)
	}
	b := &backend{c: c, url: s.URL, tokens: upstream.Passthrough{}}
	switch s.Auth.Mode {
	case "token":
		t, err := config.ReadSecret(s.Auth.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("migration.secondary.auth.token_file: %v", err)
		}
		b.tokens = upstream.StaticToken(t)
	case "keystone":
		pw, err := config.ReadSecret(s.Auth.Keystone.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("migration.secondary.auth.keystone.password_file: %v", err)
		}
		k := s.Auth.Keystone
		b.tokens = upstream.NewKeystoneLogin(upstream.Account{URL: k.URL, UserName: k.UserName, UserDomain: k.UserDomain, ProjectID: k.ProjectID}, pw, s.Timeout, nil)
	case "passthrough":
		if tokenFile != "" {
			if b.tokens, err = tokenFromFile("", tokenFile); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

func (s *backend) Side() translate.Side { return s.c.Side() }
func (s *backend) URL() string          { return s.url }

// Call sends one request; the answer's body is copied out of the pool.
func (s *backend) Call(ctx context.Context, r migrate.Call) (int, []byte, error) {
	tok, err := s.tokens.UpstreamToken(ctx, r.CallerToken)
	if err != nil {
		return 0, nil, err
	}
	a, terr := s.c.Do(upstream.Request{Method: r.Method, Path: r.Path, Query: r.Query, Body: r.Body, Token: tok})
	if terr != nil {
		return 0, nil, terr
	}
	defer a.Release()
	return a.Status, bytes.Clone(a.Body), nil
}

// buildMigration makes the mirror when migration is on; every Build hands it to
// the proxy. Its goroutines start with startMigration.
func buildMigration(cfg *config.Config, o *Options) error {
	mc := cfg.Migration
	if !mc.On() {
		return nil
	}
	back, err := NewSecondary(mc)
	if err != nil {
		return err
	}
	mo := migrate.Options{Config: mc, Backend: back, Log: o.Log, Meter: o.Telemetry.Meter,
		Primary: proxy.UpstreamSide(cfg.Upstream).String() + " " + cfg.Upstream.URL}
	if o.Telemetry.Tracing {
		mo.Tracer = o.Telemetry.Tracer
	}
	if mc.UserMapFile != "" {
		if mo.Users, err = migrate.LoadUserMap(mc.UserMapFile); err != nil {
			return fmt.Errorf("migration.user_map_file: %v", err)
		}
	}
	if mc.JournalKeyFile != "" {
		if mo.Key, err = migrate.ReadKey(mc.JournalKeyFile); err != nil {
			return fmt.Errorf("migration.journal_key_file: %v", err)
		}
	}
	if mc.Mode == migrate.ModeMirror {
		if mo.Journal, err = openJournal(cfg); err != nil {
			return err
		}
	}
	m, err := migrate.New(mo)
	if err != nil {
		return err
	}
	o.migration = m
	return nil
}

func openJournal(cfg *config.Config) (migrate.Journal, error) {
	if p := cfg.Migration.JournalPath(); p != "" {
		j, err := migrate.OpenFile(p)
		if err != nil {
			return nil, fmt.Errorf("migration.journal: %v", err)
		}
		return j, nil
	}
	rdb, err := policy.NewRedis(cfg.Cache.RedisURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Migration.Secondary.Timeout)
	defer cancel()
	j, err := migrate.NewRedisJournal(ctx, rdb, true)
	if err != nil {
		return nil, fmt.Errorf("migration.journal: redis: %v", err)
	}
	return j, nil
}

// mirror is what the proxy is told of writes and reads (nil: migration off).
func (o Options) mirror() proxy.Mirror {
	if o.migration == nil {
		return nil // a nil *Mirror in the interface would not be nil
	}
	return o.migration
}

// startMigration runs the mirror's goroutines and registers its readiness check.
func (r *Runtime) startMigration() {
	if m := r.opts.migration; m != nil {
		m.Start()
		r.health.AddCheck("migration", m.Check)
	}
}

// stopMigration stops the worker (pending entries stay journaled) and closes the journal.
func (r *Runtime) stopMigration(ctx context.Context) error {
	if m := r.opts.migration; m != nil {
		return m.Close(ctx)
	}
	return nil
}

// adminRoutes adds GET /migration to the admin handler when migration is on.
func (o Options) adminRoutes(h http.Handler) http.Handler {
	if o.migration == nil {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("GET /migration", o.migration)
	mux.Handle("/", h)
	return mux
}
