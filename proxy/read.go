package proxy

import (
	"net/http"
	"net/url"

	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
)

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

func (s *Server) list(k *call) *translate.Error {
	target := k.userFilter
	if target == "" {
		target = k.who.UserID
	}
	k.owner = target
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
	a, err := s.send(k, http.MethodGet, upstream.BasePath(s.side), s.listQuery(k, user), nil)
	if err != nil {
		return err
	}
	switch {
	case a.Status != http.StatusOK && s.same(k):
		return s.pass(k, a)
	case a.Status != http.StatusOK:
		return s.upError(translate.OpList, a)
	case s.same(k):
		return s.listSame(k, a, user)
	}
	return s.listCross(k, a, user)
}

// listQuery is the upstream's list query for user's keys ("" everyone's).
func (s *Server) listQuery(k *call, user string) string {
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
	return q.Encode()
}

// listSame relays the upstream's list, learning the keys in it.
func (s *Server) listSame(k *call, a upstream.Answer, user string) *translate.Error {
	var keys []translate.Cred
	translate.ForEachInList(s.side, a.Body, func(c translate.Cred) {
		s.seen.add(c.Access)
		if s.mirrorsReads() {
			keys = append(keys, c)
		}
	})
	s.read(k, translate.OpList, "", user, keys)
	return s.pass(k, a)
}

// listCross renders the upstream's list for the client, one key at a time.
func (s *Server) listCross(k *call, a upstream.Answer, user string) *translate.Error {
	var keys []translate.Cred
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
