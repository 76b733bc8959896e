package proxy

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceHeaders are the trace headers of a call the bridge makes: with tracing
// on, ctx's span as parent; off, the caller's own trace context carried on when
// it is valid W3C (nil when there is none), so a trace still crosses the bridge.
// Nothing else of the client's reaches a backend: not baggage, not an
// oversized or malformed traceparent.
func (s *Server) traceHeaders(k *call, ctx context.Context) http.Header {
	if s.tel.Tracing {
		th := http.Header{}
		s.tel.Propagator.Inject(ctx, propagation.HeaderCarrier(th))
		for name := range th {
			if name != "Traceparent" && name != "Tracestate" {
				delete(th, name) // a configured baggage or vendor propagator
			}
		}
		return th
	}
	in := k.c.Request().Header
	tp := in["Traceparent"]
	if len(tp) != 1 || !translate.ValidTraceparent(tp[0]) {
		return nil
	}
	th := http.Header{"Traceparent": tp}
	if ts := in["Tracestate"]; len(ts) == 1 && translate.ValidTracestate(ts[0]) {
		th["Tracestate"] = ts
	}
	return th
}

// send calls the upstream with the credentials configured for it.
func (s *Server) send(k *call, method, path, query string, body []byte) (upstream.Answer, *translate.Error) {
	tok, err := s.tokens.UpstreamToken(k.ctx, k.token)
	if err != nil {
		return upstream.Answer{}, translate.ErrUnavailable("cannot obtain upstream credentials; try again later").WithCause(err)
	}
	return s.sendAs(k, tok, method, path, query, body)
}

// sendAs calls the upstream with token tok.
func (s *Server) sendAs(k *call, tok, method, path, query string, body []byte) (upstream.Answer, *translate.Error) {
	reqID := ""
	if s.side.Dialect == translate.Oscred {
		reqID = k.reqID
	}
	if !s.tel.Tracing {
		start := time.Now()
		a, e := s.up.Do(upstream.Request{Method: method, Path: path, Query: query, Body: body, Token: tok, RequestID: reqID, Trace: s.traceHeaders(k, k.ctx)})
		s.tel.Metrics.Upstream(k.ctx, s.side, k.op, time.Since(start))
		k.keep(a)
		return a, e
	}
	// A lean client span instead of otelhttp's transport wrapper: on this hot
	// path the wrapper's body wrapping and attribute sets cost more than the
	// translation itself (BenchmarkBridgePatchB2A in package app measures it).
	ctx, span := s.tel.Tracer.Start(k.ctx, upstreamSpanNames[method], trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("url.path", path),
			attribute.String("server.address", s.up.Base())))
	start := time.Now()
	a, e := s.up.Do(upstream.Request{Method: method, Path: path, Query: query, Body: body, Token: tok, RequestID: reqID, Trace: s.traceHeaders(k, ctx)})
	s.tel.Metrics.Upstream(k.ctx, s.side, k.op, time.Since(start))
	k.keep(a)
	if e != nil {
		span.SetStatus(codes.Error, e.Message)
	} else {
		span.SetAttributes(attribute.Int("http.response.status_code", a.Status))
		if a.Status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(a.Status))
		}
	}
	span.End()
	return a, e
}

var upstreamSpanNames = map[string]string{
	http.MethodGet: "upstream GET", http.MethodPost: "upstream POST", http.MethodPut: "upstream PUT",
	http.MethodPatch: "upstream PATCH", http.MethodDelete: "upstream DELETE",
}

// translating opens a span around a translation when tracing is on.
func (s *Server) translating(k *call) func() {
	if !s.tel.Tracing {
		return noop
	}
	_, span := s.tel.Tracer.Start(k.ctx, "translate", trace.WithAttributes(
		attribute.String("credbridge.from", s.side.String()), attribute.String("credbridge.to", k.client.String())))
	return func() { span.End() }
}

func noop() {}

func (s *Server) keyPath(upID string) string { return upstream.BasePath(s.side) + "/" + upID }

// upError maps an upstream error answer to the client's dialect.
func (s *Server) upError(k *call, a upstream.Answer) *translate.Error {
	return translate.ParseUpstreamError(s.side, k.op, a.Status, a.Body)
}

// pass relays a same-dialect answer untouched, unless it is not the JSON the
// dialect promises, in which case it becomes a proper error.
func (s *Server) pass(k *call, a upstream.Answer) *translate.Error {
	switch {
	case a.Status == http.StatusNoContent:
		return s.reply(k, a.Status, nil, a)
	case a.Status < 200 || (a.Status >= 300 && a.Status < 400):
		return translate.ErrBadGateway("upstream answered with an unexpected status")
	case len(a.Body) == 0 || !gjson.ValidBytes(a.Body):
		if a.Status >= 400 {
			return s.upError(k, a)
		}
		return translate.ErrBadGateway("upstream answered with something that is not JSON")
	}
	if s.side == translate.SideKeystone {
		// The upstream's own address stays behind the bridge.
		k.out = translate.RewriteLinks(k.out, a.Body, s.publicURL)
		return s.reply(k, a.Status, k.out, a)
	}
	return s.reply(k, a.Status, a.Body, a)
}

func (s *Server) same(k *call) bool { return k.client == s.side }

func (s *Server) deny(k *call) *translate.Error {
	return translate.ErrForbidden("policy does not allow " + k.op.String() + " for this caller on this key")
}

// view says how answers are shown to this client.
func (s *Server) view(k *call, op translate.Op) translate.View {
	v := translate.View{Op: op, Form: k.req.Blob, Secrets: k.client.Dialect == translate.EC2Blob, ProjectID: k.req.ProjectID}
	if v.ProjectID == "" {
		v.ProjectID = k.projectFilter
	}
	if v.ProjectID == "" {
		v.ProjectID = k.who.ProjectID
	}
	if k.client == translate.SideKeystone {
		v.Links = s.links // never from the client's Host header
	}
	return v
}

// fetch reads one key from the upstream, learning its owner on the way.
func (s *Server) fetch(k *call, upID string) (translate.Cred, upstream.Answer, *translate.Error) {
	a, err := s.send(k, http.MethodGet, s.keyPath(upID), "", nil)
	if err != nil {
		return translate.Cred{}, a, err
	}
	if a.Status != http.StatusOK {
		return translate.Cred{}, a, s.upError(k, a)
	}
	c, ok := translate.ParseAnswer(s.side, a.Body)
	if !ok || c.UserID == "" {
		return c, a, translate.ErrBadGateway("upstream answered a key without an owner")
	}
	s.owners.Set(k.ctx, upID, c.UserID)
	s.seen.add(c.Access)
	return c, a, nil
}

// owner of the key named upID: from the cache, else from the upstream.
func (s *Server) owner(k *call, upID string) (string, *translate.Error) {
	if o, ok := s.owners.Get(k.ctx, upID); ok {
		return o, nil
	}
	c, _, err := s.fetch(k, upID)
	return c.UserID, err
}

// resolve gives the id to use in the upstream path and the AK when known.
func (s *Server) resolve(k *call) (upID, ak string, err *translate.Error) {
	switch {
	case !k.client.HashIDs() && !s.side.HashIDs():
		return k.id, k.id, nil
	case !k.client.HashIDs(): // AK from the client, Keystone upstream
		return translate.HashID(k.id), k.id, nil
	case s.side.HashIDs(): // Keystone on both sides
		ak = k.req.Access
		if ak == "" {
			ak = s.seen.lookup(k.id)
		}
		return k.id, ak, nil
	}
	// A Keystone id toward an upstream that names keys by AK.
	if ak = k.req.Access; ak == "" {
		ak = s.seen.lookup(k.id)
	}
	if ak == "" {
		if ak, err = s.resolveByList(k); err != nil {
			return "", "", err
		}
	}
	return ak, ak, nil
}

// resolveByList finds the AK whose sha256 is the client's id among the caller's
// own keys on the upstream.
func (s *Server) resolveByList(k *call) (string, *translate.Error) {
	q := "user_id=" + url.QueryEscape(k.who.UserID)
	if s.side.Dialect == translate.EC2Blob {
		q += "&type=ec2"
	}
	saved := k.op
	k.op = translate.OpList // error mapping as for a list
	a, err := s.send(k, http.MethodGet, upstream.BasePath(s.side), q, nil)
	k.op = saved
	if err != nil {
		return "", err
	}
	if a.Status != http.StatusOK {
		return "", s.upError(k, a)
	}
	found := ""
	translate.ForEachInList(s.side, a.Body, func(c translate.Cred) {
		s.seen.add(c.Access)
		if found == "" && c.Access != "" && translate.HashID(c.Access) == k.id {
			found = strings.Clone(c.Access)
		}
	})
	if found == "" {
		return "", translate.ErrNotFound("could not find credential " + k.id)
	}
	return found, nil
}

func (s *Server) create(k *call) *translate.Error {
	target := k.req.UserID
	if target == "" {
		target = k.who.UserID
	}
	if d := s.decide(k, target); !d.Allowed {
		return s.deny(k)
	}
	base := upstream.BasePath(s.side)
	if s.same(k) {
		body := k.body
		if !k.req.HasUserID { // both dialects name the owner; the default is the caller
			body, _ = sjson.SetBytes(body, "credential.user_id", target)
		}
		a, err := s.send(k, http.MethodPost, base, "", body)
		if err != nil {
			return err
		}
		if a.Status < 300 {
			if c, ok := translate.ParseAnswer(s.side, a.Body); ok {
				s.seen.add(c.Access)
				s.owners.Set(k.ctx, s.side.ID(c.Access), c.UserID)
				s.wrote(k, translate.OpCreate, c)
			}
		}
		return s.pass(k, a)
	}
	c := k.req
	c.UserID = target
	if s.side.Dialect == translate.EC2Blob {
		if c.ProjectID == "" {
			c.ProjectID = k.who.ProjectID
		}
		if s.side == translate.SideKeystone && c.Access == "" {
			c.Access, c.Secret = translate.NewKeyPair() // Keystone needs the pair from its client
		}
		if c.Access != "" && c.Status == translate.StatusUnset {
			c.Status = translate.StatusActive
		}
	}
	a, err := s.send(k, http.MethodPost, base, "", translate.AppendRequest(make([]byte, 0, 256), s.side, translate.OpCreate, c))
	if err != nil {
		return err
	}
	if a.Status != http.StatusCreated && a.Status != http.StatusOK {
		return s.upError(k, a)
	}
	got, ok := translate.ParseAnswer(s.side, a.Body)
	if !ok || got.Access == "" {
		return translate.ErrBadGateway("upstream answered a create without an access key")
	}
	if got.Secret == "" {
		got.Secret = c.Secret
	}
	if got.UserID == "" {
		got.UserID = target
	}
	if !got.HasDescription && c.HasDescription {
		got.Description, got.HasDescription = c.Description, true
	}
	if got.Status == translate.StatusUnset {
		got.Status = translate.StatusActive
	}
	if got.CreateTime == "" && k.client.Dialect == translate.Oscred {
		got.CreateTime = s.now().UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	s.seen.add(got.Access)
	s.owners.Set(k.ctx, s.side.ID(got.Access), got.UserID)
	if got.ProjectID == "" {
		got.ProjectID = c.ProjectID
	}
	s.wrote(k, translate.OpCreate, got)
	end := s.translating(k)
	k.out = translate.AppendAnswer(k.out, k.client, s.view(k, translate.OpCreate), got)
	end()
	return s.reply(k, http.StatusCreated, k.out, a)
}

func (s *Server) list(k *call) *translate.Error {
	target := k.userFilter
	if target == "" {
		target = k.who.UserID
	}
	d := s.decide(k, target)
	if !d.Allowed {
		return s.deny(k)
	}
	// Without a user_id filter an oscred list means the caller's own keys (its
	// dialect's rule), and so does any list allowed only by ownership, whatever
	// token the bridge uses upstream; an ec2blob client a role allows gets
	// Keystone's meaning (everything it may see).
	user := k.userFilter
	if user == "" && (d.Rule == "owner" || k.client.Dialect == translate.Oscred || s.side.Dialect == translate.Oscred) {
		user = target
	}
	q := url.Values{}
	if user != "" {
		q.Set("user_id", user)
	}
	if s.side.Dialect == translate.EC2Blob {
		if k.projectFilter != "" {
			q.Set("project_id", k.projectFilter)
		}
		q.Set("type", "ec2")
	}
	a, err := s.send(k, http.MethodGet, upstream.BasePath(s.side), q.Encode(), nil)
	if err != nil {
		return err
	}
	if a.Status != http.StatusOK {
		if s.same(k) {
			return s.pass(k, a)
		}
		return s.upError(k, a)
	}
	var keys []translate.Cred
	if s.same(k) {
		translate.ForEachInList(s.side, a.Body, func(c translate.Cred) {
			s.seen.add(c.Access)
			if s.mirrorsReads() {
				keys = append(keys, c)
			}
		})
		s.read(k, translate.OpList, "", user, keys)
		return s.pass(k, a)
	}
	v := s.view(k, translate.OpList)
	end := s.translating(k)
	out := translate.AppendListOpen(k.out, k.client, v)
	n := 0
	ok := translate.ForEachInList(s.side, a.Body, func(c translate.Cred) {
		if c.Access == "" {
			return
		}
		s.seen.add(c.Access)
		if s.mirrorsReads() {
			keys = append(keys, c)
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = translate.AppendCred(out, k.client, v, c)
	})
	end()
	if !ok {
		return translate.ErrBadGateway("upstream answered a list that is not a list")
	}
	k.out = translate.AppendListClose(out)
	s.read(k, translate.OpList, "", user, keys)
	return s.reply(k, http.StatusOK, k.out, a)
}

func (s *Server) get(k *call) *translate.Error {
	upID, ak, err := s.resolve(k)
	if err != nil {
		return err
	}
	c, a, err := s.fetch(k, upID)
	if err != nil {
		if s.same(k) && a.Status >= 400 {
			return s.pass(k, a)
		}
		return err
	}
	if d := s.decide(k, c.UserID); !d.Allowed {
		return s.deny(k)
	}
	if c.Access == "" {
		c.Access = ak
	}
	if s.mirrorsReads() {
		s.read(k, translate.OpGet, c.Access, "", []translate.Cred{c})
	}
	if s.same(k) {
		return s.pass(k, a)
	}
	end := s.translating(k)
	k.out = translate.AppendAnswer(k.out, k.client, s.view(k, translate.OpGet), c)
	end()
	return s.reply(k, http.StatusOK, k.out, a)
}

func (s *Server) update(k *call) *translate.Error {
	upID, ak, err := s.resolve(k)
	if err != nil {
		return err
	}
	method := http.MethodPatch
	if s.side.Dialect == translate.Oscred {
		method = http.MethodPut
	}
	switch {
	case s.same(k):
		// The body goes as the client sent it (scanned: it has one reading), so
		// a user_id in it must be the key's owner, as on every update path.
		owner, err := s.authorize(k, upID, k.req.HasUserID)
		if err != nil {
			return err
		}
		if err := noMove(k, owner); err != nil {
			return err
		}
		a, err := s.send(k, method, s.keyPath(upID), "", k.body)
		if err != nil {
			return err
		}
		if a.Status == http.StatusOK && s.mirror != nil {
			if got, ok := translate.ParseAnswer(s.side, a.Body); ok {
				if got.Access == "" {
					got.Access = ak
				}
				s.wrote(k, translate.OpUpdate, got)
			}
		}
		return s.pass(k, a)

	case s.side.Dialect == translate.Oscred: // ec2blob client: status and description only
		owner, err := s.authorize(k, upID, k.req.HasUserID)
		if err != nil {
			return err
		}
		if err := noMove(k, owner); err != nil {
			return err
		}
		a, err := s.send(k, method, s.keyPath(upID), "", translate.AppendRequest(make([]byte, 0, 128), s.side, translate.OpUpdate, k.req))
		if err != nil {
			return err
		}
		return s.answerUpdate(k, a, ak, k.req)
	}
	// Toward an ec2blob upstream the whole blob is written back: read it, merge.
	cur, _, err := s.fetch(k, upID)
	if err != nil {
		return err
	}
	if d := s.decide(k, cur.UserID); !d.Allowed {
		return s.deny(k)
	}
	if err := noMove(k, cur.UserID); err != nil {
		return err
	}
	merged := cur
	if k.req.Status != translate.StatusUnset {
		merged.Status = k.req.Status
	}
	if k.req.HasDescription {
		merged.Description, merged.HasDescription = k.req.Description, true
	}
	if k.req.Secret != "" {
		merged.Secret = k.req.Secret
	}
	if k.req.ProjectID != "" {
		merged.ProjectID = k.req.ProjectID
	}
	if merged.Access == "" || merged.Secret == "" {
		// Writing a blob without its secret would erase the key's secret upstream.
		return translate.ErrBadGateway("upstream did not return the key's blob in full; refusing to overwrite it")
	}
	a, err := s.send(k, method, s.keyPath(upID), "", translate.AppendRequest(make([]byte, 0, 256), s.side, translate.OpUpdate, merged))
	if err != nil {
		return err
	}
	return s.answerUpdate(k, a, merged.Access, k.req)
}

// answerUpdate renders an upstream's update answer for a client of another dialect.
func (s *Server) answerUpdate(k *call, a upstream.Answer, ak string, req translate.Cred) *translate.Error {
	if a.Status != http.StatusOK {
		return s.upError(k, a)
	}
	got, ok := translate.ParseAnswer(s.side, a.Body)
	if !ok {
		return translate.ErrBadGateway("upstream answered an update with something that is not a credential")
	}
	if got.Access == "" {
		got.Access = ak
	}
	if !got.HasDescription && req.HasDescription {
		got.Description, got.HasDescription = req.Description, true
	}
	s.wrote(k, translate.OpUpdate, got)
	end := s.translating(k)
	k.out = translate.AppendAnswer(k.out, k.client, s.view(k, translate.OpUpdate), got)
	end()
	return s.reply(k, http.StatusOK, k.out, a)
}

// authorize checks the rule for k's operation. The key's owner is looked up
// when a rule needs it, or when the caller must know it (force), and returned
// ("" when not looked up). Deciding comes before anything else is said about
// the key, so a caller who may not touch it learns nothing more.
func (s *Server) authorize(k *call, upID string, force bool) (string, *translate.Error) {
	owner := ""
	if force || s.rules.NeedsOwner(k.op.String(), k.who) {
		var err *translate.Error
		if owner, err = s.owner(k, upID); err != nil {
			return "", err
		}
	}
	if d := s.decide(k, owner); !d.Allowed {
		return "", s.deny(k)
	}
	return owner, nil
}

// noMove refuses an update naming another user than the key's owner: an
// update must not move a key.
func noMove(k *call, owner string) *translate.Error {
	if k.req.HasUserID && k.req.UserID != owner {
		return translate.ErrBadParam("user_id differs from the key's owner: an update cannot move a key")
	}
	return nil
}

func (s *Server) delete(k *call) *translate.Error {
	upID, ak, err := s.resolve(k)
	if err != nil {
		return err
	}
	owner, err := s.authorize(k, upID, false)
	if err != nil {
		return err
	}
	a, err := s.send(k, http.MethodDelete, s.keyPath(upID), "", nil)
	if err != nil {
		return err
	}
	if a.Status == http.StatusNoContent || a.Status == http.StatusOK {
		s.wrote(k, translate.OpDelete, translate.Cred{Access: ak, ID: upID, UserID: owner})
		s.owners.Forget(k.ctx, upID)
		if ak != "" {
			s.seen.forget(ak)
		}
		return s.reply(k, http.StatusNoContent, nil, a)
	}
	if s.same(k) {
		return s.pass(k, a)
	}
	return s.upError(k, a)
}

// securityTokens passes temporary-key requests to an oscred upstream, with the
// caller's own token whatever upstream.auth says; ec2blob has no counterpart.
func (s *Server) securityTokens(k *call) *translate.Error {
	if s.side != translate.SideOscred {
		return translate.ErrNotImpl("temporary access keys have no counterpart on this upstream")
	}
	if err := s.checkInput(k, nil); err != nil {
		return err
	}
	if err := s.readBody(k, k.c.Request()); err != nil {
		return err
	}
	if err := translate.ScanBody(k.body); err != nil {
		return err
	}
	if err := s.authenticate(k); err != nil {
		return err
	}
	// Always the caller's own token: with the service token the upstream
	// would issue the service account's temporary keys to this caller.
	a, err := s.sendAs(k, k.token, http.MethodPost, "/v3.0/OS-CREDENTIAL/securitytokens", "", k.body)
	if err != nil {
		return err
	}
	return s.pass(k, a)
}
