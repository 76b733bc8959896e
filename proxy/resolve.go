package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
)

// fetch reads one key from the upstream, learning its owner on the way.
func (s *Server) fetch(k *call, upID string) (translate.Cred, upstream.Answer, *translate.Error) {
	a, err := s.send(k, http.MethodGet, s.keyPath(upID), "", nil)
	if err != nil {
		return translate.Cred{}, a, err
	}
	if a.Status != http.StatusOK {
		return translate.Cred{}, a, s.upError(k.op, a)
	}
	c, ok := translate.ParseAnswer(s.side, a.Body)
	if !ok || c.UserID == "" {
		return c, a, translate.ErrBadGateway("upstream answered a key without an owner")
	}
	s.owners.Set(k.ctx, upID, c.UserID)
	s.seen.add(c.Access)
	k.owner = c.UserID
	return c, a, nil
}

// owner of the key named upID: from the cache, else from the upstream.
func (s *Server) owner(k *call, upID string) (string, *translate.Error) {
	if o, ok := s.owners.Get(k.ctx, upID); ok {
		k.owner = o
		return o, nil
	}
	c, _, err := s.fetch(k, upID)
	return c.UserID, err
}

// resolve gives the id to use in the upstream path and the AK when known.
func (s *Server) resolve(k *call) (upID, ak string, err *translate.Error) {
	defer func() { k.target = ak }()
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
	a, err := s.send(k, http.MethodGet, upstream.BasePath(s.side), q, nil)
	if err != nil {
		return "", err
	}
	if a.Status != http.StatusOK {
		return "", s.upError(translate.OpList, a) // errors as for a list
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
