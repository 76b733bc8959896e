package migrate

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/url"

	"github.com/credbridge/credbridge/translate"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// shadowJob is one read to replay on the secondary.
type shadowJob struct {
	r    Read
	link trace.SpanContext
}

// Read queues a sampled read for comparison; it never blocks: a full queue
// drops the read and counts it.
func (m *Mirror) Read(ctx context.Context, r Read) {
	if !m.o.Config.On() {
		return
	}
	if rate := m.o.Config.SampleRate(); rate < 1 && rand.Float64() >= rate {
		return
	}
	if m.o.Config.Secondary.Auth.Mode != "passthrough" {
		r.Caller.Token = "" // not needed: do not keep it queued
	}
	r = r.owned() // queued past the request, whose buffers are reused
	select {
	case m.shadowQ <- shadowJob{r: r, link: trace.SpanContextFromContext(ctx)}:
	default:
		m.dropped.Add(1)
		m.m.dropped.Add(ctx, 1)
	}
}

func (m *Mirror) shadowLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case j := <-m.shadowQ:
			m.shadow(j)
		}
	}
}

// shadow replays one read on the secondary and compares the answers.
func (m *Mirror) shadow(j shadowJob) {
	ctx := context.Background()
	r := j.r
	sp := m.span(j.link, "migration shadow "+r.Op.String())
	defer sp.End()
	sp.SetAttributes(attribute.String("migration.secondary", m.side.String()))
	primary, ok := m.primaryKeys(ctx, r)
	if !ok {
		return
	}
	path, query := "", ""
	if r.Op == translate.OpGet {
		path = keyPath(m.side, r.Access)
	} else {
		user := firstOf(r.UserFilter, r.Caller.UserID)
		me, _ := m.o.Users.Secondary(user)
		path, query = translate.BasePath(m.side), "user_id="+url.QueryEscape(me.Secondary)
	}
	st, body, err := m.o.Backend.Call(ctx, Call{Method: http.MethodGet, Path: path, Query: query, CallerToken: r.Caller.Token})
	secondary, ok := m.secondaryKeys(r.Op, st, body, err)
	if !ok {
		sp.SetStatus(codes.Error, "secondary did not answer the read")
		// counted apart (divergences{kind=secondary_error}), not as a mismatch
		m.diverge(ctx, Divergence{Kind: KindSecondaryError, Access: r.Access, Owner: firstOf(r.UserFilter, r.Caller.UserID), Op: r.Op.String(), Secondary: errText(st, err)})
		return
	}
	divs := Compare(primary, secondary)
	result := "match"
	if len(divs) > 0 {
		result = "diverged"
	}
	sp.SetAttributes(attribute.String("migration.result", result))
	m.m.compared.Add(ctx, 1, compareAttrs(r.Op, result))
	for _, d := range divs {
		d.Op = r.Op.String()
		m.diverge(ctx, d)
	}
}

// primaryKeys reads the primary's answer into the model, owners mapped; a
// user the map does not list is an unmapped_user divergence and no comparison.
func (m *Mirror) primaryKeys(ctx context.Context, r Read) ([]Key, bool) {
	out := make([]Key, 0, len(r.Keys))
	for _, c := range r.Keys {
		owner := firstOf(c.UserID, r.UserFilter)
		me, ok := m.o.Users.Secondary(owner)
		if !ok {
			m.diverge(ctx, Divergence{Kind: KindUnmappedUser, Access: c.Access, Owner: owner, Op: r.Op.String()})
			return nil, false
		}
		out = append(out, m.fp.Neutral(c, me.Secondary))
	}
	if r.Op == translate.OpList && len(r.Keys) == 0 && r.UserFilter != "" {
		if _, ok := m.o.Users.Secondary(r.UserFilter); !ok {
			m.diverge(ctx, Divergence{Kind: KindUnmappedUser, Owner: r.UserFilter, Op: r.Op.String()})
			return nil, false
		}
	}
	return out, true
}

// secondaryKeys reads the secondary's answer: a get's 404 is "no key"; any
// other failure is not an answer (ok false).
func (m *Mirror) secondaryKeys(op translate.Op, st int, body []byte, err error) ([]Key, bool) {
	if err != nil {
		m.health.reach(err)
		return nil, false
	}
	m.health.reach(nil)
	var out []Key
	switch {
	case op == translate.OpGet && st == http.StatusNotFound:
		return nil, true
	case st != http.StatusOK:
		return nil, false
	case op == translate.OpGet:
		c, ok := translate.ParseAnswer(m.side, body)
		if ok {
			out = append(out, m.fp.Neutral(c, c.UserID))
		}
		return out, ok
	}
	ok := translate.ForEachInList(m.side, body, func(c translate.Cred) {
		out = append(out, m.fp.Neutral(c, c.UserID))
	})
	return out, ok
}

func compareAttrs(op translate.Op, result string) metric.AddOption {
	return metric.WithAttributes(attribute.String("op", op.String()), attribute.String("result", result))
}

func errText(st int, err error) string {
	if err != nil {
		return "no answer"
	}
	return "status " + http.StatusText(st)
}
