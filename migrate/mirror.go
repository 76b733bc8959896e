package migrate

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/credbridge/credbridge/translate"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Backend is the secondary as migrate calls it: one HTTP exchange, the token
// chosen by the backend's auth (callerToken is used only by passthrough).
// app/migration.go puts an upstream.Client and its token source behind it:
// migrate may not import upstream (config holds migrate.Config, and config may
// not depend on upstream).
type Backend interface {
	Side() translate.Side
	// URL is the secondary's base URL, for /migration and spans.
	URL() string
	// Call returns the status and a copy of the body; err when no answer came.
	Call(ctx context.Context, r Call) (int, []byte, error)
}

// Call is one request to the secondary.
type Call struct {
	Method, Path, Query string
	Body                []byte
	CallerToken         string
}

// ErrNoCallerToken: a passthrough secondary needs the caller's token, which
// lives only in the memory of the process that journaled the write.
var ErrNoCallerToken = errors.New("passthrough secondary: the caller's token is gone with the process that took the write")

// Options build a Mirror.
type Options struct {
	Config  Config
	Primary string // the primary's side and URL, for /migration
	Backend Backend
	// Journal is required for mirror mode, unused in shadow.
	Journal Journal
	// Key is the journal key (nil in shadow without one: fingerprints are
	// keyed with a random per-process key).
	Key   []byte
	Users *UserMap
	Log   *slog.Logger
	// Tracer makes the secondary's spans (nil: none); Propagator reads the
	// journaled trace context (nil: W3C trace context).
	Tracer trace.Tracer
	Meter  metric.Meter
	// QueueSize bounds shadow reads waiting (default 1024); Workers apply the
	// journal in parallel (default 16); MaxBackoff caps retry waits (default 30s).
	QueueSize, Workers int
	MaxBackoff         time.Duration
	// Previous is the mirror this one replaces on a reload (nil: none). Its
	// metrics, recent divergences and caller tokens carry over, it must share
	// this one's Journal, and the entries journaled for its secondary are
	// still applied there, by this one's worker.
	Previous *Mirror
}

// Mirror is proxy.Mirror: it journals the primary's writes, applies them to
// the secondary, and compares sampled reads.
type Mirror struct {
	o       Options
	side    translate.Side
	sealer  *Sealer
	fp      Fingerprinter
	log     *slog.Logger
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	m       *metrics
	shadowQ chan shadowJob
	divs    *ring
	session string
	target  string             // the secondary's side and URL, journaled with each entry
	retired map[string]*Mirror // earlier mirrors by target: where their entries still apply
	tokens  *sync.Map          // entry id -> caller token (passthrough only; memory only)
	health  health
	dropped atomic.Int64 // shadow reads dropped on a full queue

	wake  chan struct{}
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	retry retries
}

// New builds the mirror; Start runs its goroutines.
func New(o Options) (*Mirror, error) {
	if o.Config.Mode == ModeMirror && o.Journal == nil {
		return nil, errors.New("migration: mirror needs a journal")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Tracer == nil {
		o.Tracer = noop.NewTracerProvider().Tracer("")
	}
	key := o.Key
	if len(key) == 0 {
		key = []byte(randID(32))
	}
	s, err := NewSealer(key)
	if err != nil {
		return nil, err
	}
	m := &Mirror{o: o, side: o.Backend.Side(), sealer: s, fp: s.FP, log: o.Log, tracer: o.Tracer,
		prop: propagation.TraceContext{}, shadowQ: make(chan shadowJob, o.QueueSize),
		divs: &ring{max: 100}, session: randID(16), wake: make(chan struct{}, 1), stop: make(chan struct{}),
		retry: retries{m: map[string]retryState{}}, tokens: &sync.Map{}, retired: map[string]*Mirror{}}
	m.target = m.side.String() + " " + o.Backend.URL()
	if p := o.Previous; p != nil {
		m.m, m.divs, m.tokens = p.m, p.divs, p.tokens
		for t, r := range p.retired {
			m.retired[t] = r
		}
		if p.target != m.target {
			m.retired[p.target] = p
		}
		delete(m.retired, m.target) // back to an earlier secondary: this mirror applies there
		return m, nil
	}
	if m.m, err = newMetrics(o.Meter); err != nil {
		return nil, err
	}
	return m, nil
}

// Secondary is the backend the mirror applies to.
func (m *Mirror) Secondary() Backend { return m.o.Backend }

// Start runs the shadow comparers and, in mirror mode, the journal worker.
func (m *Mirror) Start() {
	for i := 0; i < 2; i++ {
		m.wg.Add(1)
		go m.shadowLoop()
	}
	if m.o.Journal != nil {
		m.wg.Add(2)
		go m.workLoop()
		go m.statsLoop()
	}
}

// Stop ends the goroutines, waiting for applies in flight within ctx. Pending
// entries stay in the journal for the next start.
func (m *Mirror) Stop(ctx context.Context) error {
	m.once.Do(func() { close(m.stop) })
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the mirror and closes its journal (a reload's replaced mirror
// is only stopped: its successor owns the journal).
func (m *Mirror) Close(ctx context.Context) error {
	err := m.Stop(ctx)
	if m.o.Journal != nil {
		err = errors.Join(err, m.o.Journal.Close())
	}
	return err
}

// Wrote journals a write the primary confirmed (mirror mode); it returns once
// the entry is durable.
func (m *Mirror) Wrote(ctx context.Context, w Write) error {
	if m.o.Config.Mode != ModeMirror {
		return nil
	}
	e, ok := m.entry(ctx, w)
	if !ok {
		return nil
	}
	id, err := m.o.Journal.Append(ctx, e)
	if err != nil {
		m.m.journalErrs.Add(ctx, 1)
		m.health.journalErr(err)
		return err
	}
	if m.o.Config.Secondary.Auth.Mode == "passthrough" && w.Caller.Token != "" {
		m.tokens.Store(id, strings.Clone(w.Caller.Token)) // kept until applied
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}

// entry turns a write into a journal entry; ok is false when it is not
// replicated (recorded as a divergence instead).
func (m *Mirror) entry(ctx context.Context, w Write) (Entry, bool) {
	k := w.Key
	e := Entry{Op: w.Op.String(), Access: k.Access, KeyID: KeyID(k.Access, keystoneID(k.ID)), Target: m.target,
		At: time.Now().UnixMilli(), Session: m.session, Status: k.Status.Oscred(),
		Desc: k.Description, HasDesc: k.HasDescription, Trace: m.traceOf(ctx)}
	if e.KeyID == "" || k.Access != "" && !translate.ValidID(translate.SideIBM, k.Access) {
		// The AK becomes a path segment on the secondary: only the id alphabet.
		m.diverge(ctx, Divergence{Kind: KindSecondaryError, Op: e.Op, Primary: "write without a usable access key or Keystone id"})
		return e, false
	}
	if k.UserID != "" {
		me, ok := m.o.Users.Secondary(k.UserID)
		if !ok {
			m.diverge(ctx, Divergence{Kind: KindUnmappedUser, Access: k.Access, Owner: k.UserID, Op: e.Op})
			return e, false
		}
		e.Owner, e.Project = me.Secondary, me.Project
	}
	if w.Op == translate.OpUpdate && k.Secret != "" {
		// an ec2blob primary discloses the secret; an update may have changed it
		e.Sealed = m.sealer.Seal(k.Access, k.Secret)
	}
	if w.Op == translate.OpCreate {
		if k.Secret == "" {
			m.diverge(ctx, Divergence{Kind: KindNeedsRekey, Access: k.Access, Owner: k.UserID, Op: e.Op})
			return e, false
		}
		e.Sealed = m.sealer.Seal(k.Access, k.Secret)
		e.Project = firstOf(e.Project, m.o.Config.DefaultProject, w.Caller.ProjectID, k.ProjectID)
	}
	return e, true
}

func keystoneID(id string) string {
	if translate.IsHashID(id) {
		return id
	}
	return ""
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// traceOf is the request's W3C traceparent, journaled so the apply's span can
// link to the request that caused it.
func (m *Mirror) traceOf(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	m.prop.Inject(ctx, c)
	return c["traceparent"]
}

// span starts the span of one secondary call, linked to the request's trace.
func (m *Mirror) span(link trace.SpanContext, name string) trace.Span {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	if link.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
	}
	_, sp := m.tracer.Start(context.Background(), name, opts...)
	return sp
}

func (m *Mirror) linkOf(traceparent string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	ctx := m.prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	return trace.SpanContextFromContext(ctx)
}

// diverge counts and keeps d.
func (m *Mirror) diverge(ctx context.Context, d Divergence) {
	d.At = time.Now().UTC().Format(time.RFC3339)
	// Counted before it is shown: a divergence /migration lists is already in
	// the metrics (what the tests, and an operator comparing the two, read).
	m.m.divergences.Add(ctx, 1, metricKind(d.Kind))
	m.divs.add(d.owned()) // kept: its strings may point into a request's buffers
}

// ring keeps the last max divergences.
type ring struct {
	mu   sync.Mutex
	max  int
	list []Divergence
}

func (r *ring) add(d Divergence) {
	r.mu.Lock()
	r.list = append(r.list, d)
	if len(r.list) > r.max {
		r.list = append(r.list[:0:0], r.list[len(r.list)-r.max:]...)
	}
	r.mu.Unlock()
}

func (r *ring) snapshot() []Divergence {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Divergence{}, r.list...)
}
