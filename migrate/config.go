package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config is the migration: section (migration.md "Roles and config"). With mode
// off nothing else is read.
type Config struct {
	// Mode: off (default) | shadow (reads compared with the secondary) | mirror
	// (shadow, plus every primary write replicated through the journal).
	// Risk of mirror: the secondary holds live secrets of every new key.
	Mode      string    `yaml:"mode"`
	Secondary Secondary `yaml:"secondary"`
	// SharedIdentity: both clouds accept the caller's token (one identity
	// service). Default false. Required for secondary.auth.mode passthrough.
	SharedIdentity bool `yaml:"shared_identity"`
	// UserMapFile is a YAML list of {primary, secondary, project}. Empty (default):
	// the same user ids on both sides. When set, writes of users it does not
	// list are not replicated (an unmapped_user divergence).
	UserMapFile string `yaml:"user_map_file"`
	// DefaultProject is the project_id of keys written to an ec2blob secondary
	// when no map entry names one. Default "": the caller's project.
	DefaultProject string `yaml:"default_project"`
	// Sample is the fraction of reads compared in shadow, 0..1. Default 1.0.
	// Risk when high: every read costs a call to the secondary.
	Sample *float64 `yaml:"sample"`
	// Journal: file:PATH (bbolt, one process; default file:credbridge-journal)
	// or redis (a Redis Stream on cache.redis_url, shared by replicas; that
	// Redis needs AOF persistence or a restart of it loses pending writes).
	Journal string `yaml:"journal"`
	// JournalKeyFile holds 32+ bytes encrypting secrets in the journal
	// (AES-GCM) and keying secret fingerprints. Required for mirror. Risk:
	// whoever has it and the journal can read pending secrets.
	JournalKeyFile string `yaml:"journal_key_file"`
	// SyncJournal is the bbolt file `credbridge migrate sync` journals its
	// writes in (the serving bridge holds the mirror's journal file). Default:
	// the journal's path + ".sync", or credbridge-sync-journal with a redis
	// journal. Risk as journal: it holds sealed secrets until applied.
	SyncJournal string `yaml:"sync_journal"`
	// MaxLag: /readyz names migration degraded when the oldest pending write is
	// older. Default 5m. Entries are never dropped for age, only reported.
	MaxLag time.Duration `yaml:"max_lag"`
}

// Secondary is the cloud being migrated to: the same shape as upstream.
type Secondary struct {
	// Dialect: oscred | ec2blob. Default ec2blob (the only one mirror can keep
	// key pairs in step with).
	Dialect string `yaml:"dialect"`
	// Flavor of an ec2blob secondary: ibm | keystone. Default ibm.
	Flavor string `yaml:"flavor"`
	// URL is the base URL. Required. Risk: plain http beyond loopback sends
	// tokens and secrets in clear.
	URL string `yaml:"url"`
	// Timeout of one call to the secondary. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConns bounds the connections to the secondary. Default 64.
	MaxConns int  `yaml:"max_conns"`
	Auth     Auth `yaml:"auth"`
}

// Auth is the token the bridge sends to the secondary.
type Auth struct {
	// Mode: token (default; TokenFile) | keystone (a service login) |
	// passthrough (the caller's token; only with shared_identity, and a
	// journaled write can be applied only while the process that took it runs).
	Mode      string   `yaml:"mode"`
	TokenFile string   `yaml:"token_file"`
	Keystone  Keystone `yaml:"keystone"`
}

// Keystone is the service login for secondary.auth.mode keystone (the same
// keys as upstream.auth.keystone).
type Keystone struct {
	URL          string `yaml:"url"`
	UserName     string `yaml:"user_name"`
	UserDomain   string `yaml:"user_domain"`
	PasswordFile string `yaml:"password_file"`
	ProjectID    string `yaml:"project_id"`
}

// Modes.
const (
	ModeOff    = "off"
	ModeShadow = "shadow"
	ModeMirror = "mirror"
)

// MinJournalKey is the shortest journal key accepted, in bytes.
const MinJournalKey = 32

// Defaults fills what is unset.
func (c *Config) Defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Mode, ModeOff)
	def(&c.Secondary.Dialect, "ec2blob")
	def(&c.Secondary.Flavor, "ibm")
	def(&c.Secondary.Auth.Mode, "token")
	def(&c.Journal, "file:credbridge-journal")
	if c.Secondary.Timeout == 0 {
		c.Secondary.Timeout = 10 * time.Second
	}
	if c.Secondary.MaxConns == 0 {
		c.Secondary.MaxConns = 64
	}
	if c.Sample == nil {
		one := 1.0
		c.Sample = &one
	}
	if c.MaxLag == 0 {
		c.MaxLag = 5 * time.Minute
	}
}

// SampleRate is Sample with its default.
func (c *Config) SampleRate() float64 {
	if c.Sample == nil {
		return 1
	}
	return *c.Sample
}

// On reports whether migration does anything.
func (c *Config) On() bool { return c.Mode == ModeShadow || c.Mode == ModeMirror }

// NeedsRedis reports whether the journal lives on cache.redis_url (config checks
// that it is set: only it sees both sections).
func (c *Config) NeedsRedis() bool { return c.Mode == ModeMirror && c.Journal == "redis" }

// JournalPath is the bbolt file of a file: journal ("" for redis).
func (c *Config) JournalPath() string {
	p, _ := strings.CutPrefix(c.Journal, "file:")
	if p == c.Journal {
		return ""
	}
	return p
}

// SyncJournalPath is where migrate sync journals (SyncJournal with its default).
func (c *Config) SyncJournalPath() string {
	switch {
	case c.SyncJournal != "":
		return c.SyncJournal
	case c.JournalPath() != "":
		return c.JournalPath() + ".sync"
	}
	return "credbridge-sync-journal"
}

// ValidateSides checks the secondary whatever the mode: the migrate commands
// read both sides even with mode off (after the cut, to verify a rollback).
func (c *Config) ValidateSides() error {
	var errs []error
	c.validateSecondary(func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("migration."+key+": "+format, a...))
	})
	return errors.Join(errs...)
}

// Validate reports every problem at once, each naming its full key. It reads
// no file (CheckFiles does), so an offline check-config can run it.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("migration."+key+": "+format, a...))
	}
	switch c.Mode {
	case ModeOff:
		return nil
	case ModeShadow, ModeMirror:
	default:
		bad("mode", "%q is not off, shadow or mirror", c.Mode)
		return errors.Join(errs...)
	}
	c.validateSecondary(bad)
	if c.Mode == ModeMirror && c.Secondary.Dialect == "oscred" {
		bad("secondary.dialect", "mirror needs an ec2blob secondary: an oscred cloud generates its own key pairs, so the same access key and secret cannot be kept (use mode shadow)")
	}
	if s := c.SampleRate(); s < 0 || s > 1 {
		bad("sample", "%v is outside 0..1", s)
	}
	if c.Journal != "redis" && c.JournalPath() == "" {
		bad("journal", "%q is not file:PATH or redis", c.Journal)
	}
	if c.Mode == ModeMirror && c.JournalKeyFile == "" {
		bad("journal_key_file", "required with mode mirror (32+ bytes encrypting secrets in the journal)")
	}
	if c.MaxLag <= 0 || c.MaxLag > 7*24*time.Hour {
		bad("max_lag", "%s is outside (0s, 168h]", c.MaxLag)
	}
	return errors.Join(errs...)
}

func (c *Config) validateSecondary(bad func(key, format string, a ...any)) {
	s := c.Secondary
	switch s.Dialect {
	case "oscred":
	case "ec2blob":
		if s.Flavor != "ibm" && s.Flavor != "keystone" {
			bad("secondary.flavor", "%q is not ibm or keystone", s.Flavor)
		}
	default:
		bad("secondary.dialect", "%q is not oscred or ec2blob", s.Dialect)
	}
	if err := checkURL(s.URL); err != nil {
		bad("secondary.url", "%v", err)
	}
	if s.Timeout <= 0 || s.Timeout > 10*time.Minute {
		bad("secondary.timeout", "%s is outside (0s, 10m]", s.Timeout)
	}
	if s.MaxConns < 1 || s.MaxConns > 65536 {
		bad("secondary.max_conns", "%d is outside 1..65536", s.MaxConns)
	}
	switch s.Auth.Mode {
	case "token":
		if s.Auth.TokenFile == "" {
			bad("secondary.auth.token_file", "required with mode token")
		}
	case "keystone":
		k := s.Auth.Keystone
		if err := checkURL(k.URL); err != nil {
			bad("secondary.auth.keystone.url", "%v", err)
		}
		if k.UserName == "" {
			bad("secondary.auth.keystone.user_name", "required with mode keystone")
		}
		if k.PasswordFile == "" {
			bad("secondary.auth.keystone.password_file", "required with mode keystone")
		}
	case "passthrough":
		if !c.SharedIdentity {
			bad("secondary.auth.mode", "passthrough sends the caller's token to the secondary: only with migration.shared_identity true (one identity service for both clouds)")
		}
	default:
		bad("secondary.auth.mode", "%q is not token, keystone or passthrough", s.Auth.Mode)
	}
}

// CheckFiles reads the files the section names (token, password, journal key,
// user map) and reports every one unreadable, empty, short or malformed.
func (c *Config) CheckFiles() error {
	if !c.On() {
		return nil
	}
	var errs []error
	bad := func(key string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("migration.%s: %v", key, err))
		}
	}
	a := c.Secondary.Auth
	if a.Mode == "token" && a.TokenFile != "" {
		bad("secondary.auth.token_file", checkFile(a.TokenFile))
	}
	if a.Mode == "keystone" && a.Keystone.PasswordFile != "" {
		bad("secondary.auth.keystone.password_file", checkFile(a.Keystone.PasswordFile))
	}
	if c.JournalKeyFile != "" {
		bad("journal_key_file", checkKeyFile(c.JournalKeyFile))
	}
	if c.UserMapFile != "" {
		_, err := LoadUserMap(c.UserMapFile)
		bad("user_map_file", err)
	}
	return errors.Join(errs...)
}

func checkURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an http(s) URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("credentials, query or fragment are not allowed in the URL")
	}
	return nil
}

func checkFile(path string) error {
	if path == "" {
		return errors.New("required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("%s is empty", path)
	}
	return nil
}

func checkKeyFile(path string) error {
	k, err := ReadKey(path)
	if err != nil {
		return err
	}
	if len(k) < MinJournalKey {
		return fmt.Errorf("%s holds %d bytes; at least %d are needed", path, len(k), MinJournalKey)
	}
	return nil
}

// ReadKey reads a key file, trimming surrounding white space.
func ReadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b), nil
}
