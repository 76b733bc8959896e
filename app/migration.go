package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync/atomic"

	"github.com/credbridge/credbridge/config"
	"github.com/credbridge/credbridge/migrate"
	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/proxy"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
)

// The journal is opened once (a journal file is locked by the process that
// opened it) and outlives reloads; the mirror over it is rebuilt when a reload
// changes migration: or the upstream (the cutover swaps them).

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

// mirrors holds the running mirror and the journal every mirror of the
// process shares: a reload that changes migration: (or swaps the sides at
// the cutover) builds a new mirror over the same journal, and entries
// journaled for the old secondary are still applied there
// (migrate.Options.Previous). Reload runs on one goroutine at a time.
type mirrors struct {
	cur     atomic.Pointer[migrate.Mirror]
	journal migrate.Journal
	cfg     *config.Config // what cur was built from (nil: none yet)
}

// same: next would build the mirror cur already is.
func (ms *mirrors) same(next *config.Config) bool {
	c := ms.cfg
	return c != nil && reflect.DeepEqual(c.Migration, next.Migration) && c.Upstream.URL == next.Upstream.URL &&
		proxy.UpstreamSide(c.Upstream) == proxy.UpstreamSide(next.Upstream)
}

// build makes the mirror for cfg, not started; it is nil when migration is
// off and no journal holds anything to drain. A journal opened here is the
// caller's to close if the build is not used (discard).
func (ms *mirrors) build(cfg *config.Config, o Options) (*migrate.Mirror, error) {
	mc, prev := cfg.Migration, ms.cur.Load()
	if !mc.On() && ms.journal == nil {
		return nil, nil
	}
	mo := migrate.Options{Config: mc, Log: o.Log, Meter: o.Telemetry.Meter, Previous: prev,
		Primary: proxy.UpstreamSide(cfg.Upstream).String() + " " + cfg.Upstream.URL}
	if o.Telemetry.Tracing {
		mo.Tracer = o.Telemetry.Tracer
	}
	var err error
	if mc.On() {
		if mo.Backend, err = NewSecondary(mc); err != nil {
			return nil, err
		}
	} else {
		mo.Backend = prev.Secondary() // off: only drains what the journal holds for it
	}
	if mc.UserMapFile != "" {
		if mo.Users, err = migrate.LoadUserMap(mc.UserMapFile); err != nil {
			return nil, fmt.Errorf("migration.user_map_file: %v", err)
		}
	}
	if mc.JournalKeyFile != "" {
		if mo.Key, err = migrate.ReadKey(mc.JournalKeyFile); err != nil {
			return nil, fmt.Errorf("migration.journal_key_file: %v", err)
		}
	}
	if mc.Mode == migrate.ModeMirror && ms.journal == nil {
		if ms.journal, err = openJournal(cfg); err != nil {
			return nil, err
		}
	}
	mo.Journal = ms.journal
	return migrate.New(mo)
}

// discard undoes a build that is not used: a journal it opened is closed.
func (ms *mirrors) discard(opened bool) {
	if opened && ms.journal != nil {
		_ = ms.journal.Close()
		ms.journal = nil
	}
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

// switchMirror makes next the running mirror, built from cfg: the one it
// replaces stops first (its applies in flight finish within the shutdown
// timeout), so two workers never drain one journal. The replaced mirror's
// Wrote still journals for requests that were in flight on the old config.
func (r *Runtime) switchMirror(next *migrate.Mirror, cfg *config.Config) {
	ms := r.mirrors
	ms.cfg = cfg
	prev := ms.cur.Swap(next)
	if prev == next {
		return
	}
	if prev != nil {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		_ = prev.Stop(ctx)
		cancel()
	}
	if next == nil {
		r.health.AddCheck("migration", func() error { return nil })
		return
	}
	next.Start()
	r.health.AddCheck("migration", next.Check)
}

// stopMigration stops the worker (pending entries stay journaled) and closes the journal.
func (r *Runtime) stopMigration(ctx context.Context) error {
	if r.mirrors == nil {
		return nil
	}
	var err error
	if m := r.mirrors.cur.Load(); m != nil {
		err = m.Stop(ctx)
	}
	if j := r.mirrors.journal; j != nil {
		err = errors.Join(err, j.Close())
	}
	return err
}

// adminRoutes adds GET /migration to the admin handler: the running mirror's
// state (404 while migration is off).
func (r *Runtime) adminRoutes(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /migration", func(w http.ResponseWriter, req *http.Request) {
		if m := r.mirrors.cur.Load(); m != nil {
			m.ServeHTTP(w, req)
			return
		}
		h.ServeHTTP(w, req)
	})
	mux.Handle("/", h)
	return mux
}
