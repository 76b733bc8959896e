package proxy

import (
	"context"

	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// call is one client request on its way through the bridge.
type call struct {
	ctx    context.Context
	c      echo.Context
	rt     *route
	client translate.Side
	op     translate.Op
	id     string
	// body is the request body, read into a pooled buffer; slurped says it
	// was read, bodyErr what went wrong reading it.
	body    []byte
	slurped bool
	bodyErr *translate.Error
	req     translate.Cred
	token   string
	who     *policy.Identity
	reqID   string
	// filters of a list request
	userFilter, projectFilter string
	// warning to answer with (secret dropped)
	warn bool
	// out is the pooled buffer answers are rendered into.
	out []byte
	// err is what the client was told went wrong (for the access log).
	err *translate.Error
	// target and owner are the access key acted on and its owner, as far as
	// they became known (for the audit trail).
	target, owner string
	// pspan is the policy span, open from token check to decision; cacheSrc
	// is where the token's answer came from, for that span.
	pspan    trace.Span
	cacheSrc string
	// answers hold upstream buffers until the client has its answer; a request
	// makes at most three upstream calls (resolve, owner look-up, the call).
	answers  [4]upstream.Answer
	nanswers int
}

// keep holds a's buffers until release.
func (k *call) keep(a upstream.Answer) {
	if !a.Held() {
		return
	}
	if k.nanswers == len(k.answers) {
		return // cannot happen today; if it did, the GC takes it (never released while in use)
	}
	k.answers[k.nanswers] = a
	k.nanswers++
}

func (k *call) release() {
	for i := 0; i < k.nanswers; i++ {
		k.answers[i].Release()
		k.answers[i] = upstream.Answer{}
	}
	k.nanswers = 0
}

// endPolicy closes the policy span with the decision, once.
func (k *call) endPolicy(allowed bool, rule string) {
	if k.pspan == nil {
		return
	}
	d := "deny"
	if allowed {
		d = "allow"
	}
	// One SetAttributes call: each one grows the span's attribute slice.
	if k.cacheSrc != "" {
		k.pspan.SetAttributes(attribute.String("credbridge.cache", k.cacheSrc),
			attribute.String("credbridge.decision", d), attribute.String("credbridge.rule", rule))
	} else {
		k.pspan.SetAttributes(attribute.String("credbridge.decision", d), attribute.String("credbridge.rule", rule))
	}
	k.pspan.End()
	k.pspan = nil
}
