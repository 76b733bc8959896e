package proxy

import (
	"net/http"

	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"github.com/tidwall/sjson"
)

// create makes a key for the request's user_id, defaulting to the caller.
func (s *Server) create(k *call) *translate.Error {
	target := k.req.UserID
	if target == "" {
		target = k.who.UserID
	}
	k.owner, k.target = target, k.req.Access
	d := s.decide(k, target)
	if !d.Allowed {
		return s.deny(k)
	}
	if d.Rule == "owner" && k.req.ProjectID != "" && k.req.ProjectID != k.who.ProjectID {
		// Allowed as the key's owner only: its project (an IBM storage
		// account, a Keystone project) is the caller's own, not one it names.
		return translate.ErrForbidden("policy allows a key only in the caller's own project")
	}
	if s.same(k) {
		return s.createSame(k, target)
	}
	return s.createCross(k, target)
}

// createSame forwards the scanned body (one reading), naming the owner when
// the client left it out.
func (s *Server) createSame(k *call, target string) *translate.Error {
	body := k.body
	if !k.req.HasUserID { // both dialects name the owner; the default is the caller
		body, _ = sjson.SetBytes(body, "credential.user_id", target)
	}
	a, err := s.send(k, http.MethodPost, upstream.BasePath(s.side), "", body)
	if err != nil {
		return err
	}
	if a.Status < 300 {
		if c, ok := translate.ParseAnswer(s.side, a.Body); ok {
			s.learn(k, c)
			s.wrote(k, translate.OpCreate, c)
		}
	}
	return s.pass(k, a)
}

// createCross renders the create in the upstream's dialect and its answer in
// the client's.
func (s *Server) createCross(k *call, target string) *translate.Error {
	c := s.createRequest(k, target)
	a, err := s.sendOut(k, http.MethodPost, upstream.BasePath(s.side), translate.AppendRequest(k.out[:0], s.side, translate.OpCreate, c))
	if err != nil {
		return err
	}
	if a.Status != http.StatusCreated && a.Status != http.StatusOK {
		return s.upError(translate.OpCreate, a)
	}
	got, ok := translate.ParseAnswer(s.side, a.Body)
	if !ok || got.Access == "" {
		return translate.ErrBadGateway("upstream answered a create without an access key")
	}
	got = s.completeCreated(k, got, c)
	s.learn(k, got)
	s.wrote(k, translate.OpCreate, got)
	end := s.translating(k)
	k.out = translate.AppendAnswer(k.out, k.client, s.view(k, translate.OpCreate), got)
	end()
	return s.reply(k, http.StatusCreated, k.out, a)
}

// createRequest is the create as the upstream needs it: an ec2blob upstream
// gets the caller's project, and Keystone a key pair (it takes it from its client).
func (s *Server) createRequest(k *call, target string) translate.Cred {
	c := k.req
	c.UserID = target
	if s.side.Dialect != translate.EC2Blob {
		return c
	}
	if c.ProjectID == "" {
		c.ProjectID = k.who.ProjectID
	}
	if s.side == translate.SideKeystone && c.Access == "" {
		c.Access, c.Secret = translate.NewKeyPair()
	}
	if c.Access != "" && c.Status == translate.StatusUnset {
		c.Status = translate.StatusActive
	}
	return c
}

// completeCreated fills in what the upstream's answer left out from what was sent.
func (s *Server) completeCreated(k *call, got, sent translate.Cred) translate.Cred {
	if got.Secret == "" {
		got.Secret = sent.Secret
	}
	if got.UserID == "" {
		got.UserID = sent.UserID
	}
	if got.ProjectID == "" {
		got.ProjectID = sent.ProjectID
	}
	if !got.HasDescription && sent.HasDescription {
		got.Description, got.HasDescription = sent.Description, true
	}
	if got.Status == translate.StatusUnset {
		got.Status = translate.StatusActive
	}
	if got.CreateTime == "" && k.client.Dialect == translate.Oscred {
		got.CreateTime = s.now().UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	return got
}

// learn remembers a key the upstream created: its owner, and its AK by hash.
func (s *Server) learn(k *call, c translate.Cred) {
	k.target = c.Access
	s.seen.add(c.Access)
	s.owners.Set(k.ctx, s.side.ID(c.Access), c.UserID)
}
