package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// health is what /readyz and /migration say about the secondary and journal.
type health struct {
	mu          sync.Mutex
	unreachable string // the last call's transport error ("" reachable)
	journal     string // the last journal error
	failures    []Failure
	lastApplied time.Time
}

// Failure is an entry that could not be applied and left the journal.
type Failure struct {
	Op     string `json:"op"`
	Access string `json:"access,omitempty"`
	Why    string `json:"why"`
	At     string `json:"at"`
}

func (h *health) reach(err error) {
	h.mu.Lock()
	h.unreachable = ""
	if err != nil {
		h.unreachable = err.Error()
	}
	h.mu.Unlock()
}

func (h *health) journalErr(err error) {
	h.mu.Lock()
	h.journal = ""
	if err != nil {
		h.journal = err.Error()
	}
	h.mu.Unlock()
}

func (h *health) applied(outcome, _ string) {
	if outcome == OutcomeDone {
		h.mu.Lock()
		h.lastApplied = time.Now()
		h.mu.Unlock()
	}
}

func (h *health) failure(e Entry, why string) {
	h.mu.Lock()
	h.failures = append(h.failures, Failure{Op: e.Op, Access: e.Access, Why: why, At: time.Now().UTC().Format(time.RFC3339)})
	if len(h.failures) > 20 {
		h.failures = h.failures[len(h.failures)-20:]
	}
	h.mu.Unlock()
}

// Check is the /readyz check: an error names why migration is degraded (the
// primary path serves on regardless).
func (m *Mirror) Check() error {
	m.health.mu.Lock()
	unreach, jerr := m.health.unreachable, m.health.journal
	m.health.mu.Unlock()
	var errs []error
	if unreach != "" {
		errs = append(errs, errors.New("secondary unreachable"))
	}
	if jerr != "" {
		errs = append(errs, errors.New("journal unavailable"))
	}
	if age := m.m.oldestAge(); m.o.Journal != nil && age > m.o.Config.MaxLag {
		errs = append(errs, fmt.Errorf("journal lags %s (max_lag %s)", age.Truncate(time.Second), m.o.Config.MaxLag))
	}
	return errors.Join(errs...)
}

// Status is what GET /migration shows. It holds no secret: divergences carry
// fingerprints, failures the reason only.
type Status struct {
	Mode      string       `json:"mode"`
	Primary   string       `json:"primary"`
	Secondary SideInfo     `json:"secondary"`
	Journal   *JournalInfo `json:"journal,omitempty"`
	Ready     string       `json:"ready"`
	Dropped   int64        `json:"shadow_dropped"`
	// Divergences are the last 100, oldest first.
	Divergences []Divergence `json:"divergences"`
	Failures    []Failure    `json:"failures"`
}

// SideInfo names a side.
type SideInfo struct {
	Dialect string `json:"dialect"`
	URL     string `json:"url"`
}

// JournalInfo is the backlog.
type JournalInfo struct {
	Kind          string  `json:"kind"`
	Pending       int64   `json:"pending"`
	OldestSeconds float64 `json:"oldest_seconds"`
	LastApplied   string  `json:"last_applied,omitempty"`
}

// Status reports the mirror's state.
func (m *Mirror) Status() Status {
	s := Status{Mode: m.o.Config.Mode, Primary: m.o.Primary,
		Secondary:   SideInfo{Dialect: m.side.String(), URL: m.o.Backend.URL()},
		Ready:       "ok",
		Dropped:     m.dropped.Load(),
		Divergences: m.divs.snapshot()}
	if err := m.Check(); err != nil {
		s.Ready = err.Error()
	}
	m.health.mu.Lock()
	s.Failures = append([]Failure{}, m.health.failures...)
	last := m.health.lastApplied
	m.health.mu.Unlock()
	if m.o.Journal != nil {
		kind := "redis"
		if m.o.Config.JournalPath() != "" {
			kind = "file"
		}
		s.Journal = &JournalInfo{Kind: kind, Pending: m.m.pending.Load(), OldestSeconds: m.m.oldestAge().Seconds()}
		if !last.IsZero() {
			s.Journal.LastApplied = last.UTC().Format(time.RFC3339)
		}
	}
	return s
}

// ServeHTTP serves GET /migration, reading the backlog afresh.
func (m *Mirror) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if m.o.Journal != nil {
		m.refreshStats()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(m.Status())
}
