package proxy

import (
	"context"
	"errors"
	"strings"

	"github.com/credbridge/credbridge/policy"
	"github.com/credbridge/credbridge/translate"
)

// readToken takes the caller's token: missing, sent twice, or not a token at
// all (a list "a, b" included: no spaces or commas) is 401, before anything is
// sent anywhere.
func (k *call) readToken() *translate.Error {
	vals := k.c.Request().Header["X-Auth-Token"]
	if len(vals) > 1 {
		// Which one would a backend read? Neither is used.
		return translate.ErrUnauthorized("X-Auth-Token must be sent once")
	}
	if len(vals) == 1 {
		k.token = vals[0]
	}
	if k.token == "" {
		return translate.ErrUnauthorized("X-Auth-Token is required")
	}
	if !policy.ValidTokenSyntax(k.token) || strings.IndexByte(k.token, ',') >= 0 {
		return translate.ErrUnauthorized("X-Auth-Token is malformed")
	}
	return nil
}

// authenticate turns the caller's token into an identity: 401 when it is missing
// or invalid, 503 (fail closed) when the identity service cannot say.
func (s *Server) authenticate(k *call) *translate.Error {
	ctx := k.ctx
	if s.tel.Tracing {
		ctx, k.pspan = s.tel.Tracer.Start(k.ctx, "policy")
	}
	var id *policy.Identity
	var err error
	if sv, ok := s.validator.(sourceValidator); ok {
		var src policy.Source
		id, src, err = sv.Lookup(ctx, k.token)
		if k.pspan != nil {
			k.cacheSrc = src.String() // set on the span with the decision
		}
	} else {
		id, err = s.validator.Validate(ctx, k.token)
	}
	switch {
	case err == nil:
		k.who = id
		return nil
	case errors.Is(err, policy.ErrInvalidToken), errors.Is(err, policy.ErrNoToken):
		return translate.ErrUnauthorized("the token is invalid or expired")
	}
	return translate.ErrUnavailable("identity service unavailable; try again later").WithCause(err)
}

// sourceValidator also says where an identity came from (policy.Cache).
type sourceValidator interface {
	Lookup(ctx context.Context, token string) (*policy.Identity, policy.Source, error)
}

// decide checks the rule for k's operation and records the decision on the
// policy span.
func (s *Server) decide(k *call, owner string) policy.Decision {
	d := s.rules.Decide(k.op.String(), k.who, owner)
	k.endPolicy(d.Allowed, d.Rule)
	return d
}

func (s *Server) deny(k *call) *translate.Error {
	return translate.ErrForbidden("policy does not allow " + k.op.String() + " for this caller on this key")
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

// noMove refuses an update naming another owner than the key's, or, where the
// project goes upstream (withProject: cur was read from an ec2blob upstream),
// another project: an update must not move a key.
func noMove(k *call, cur translate.Cred, withProject bool) *translate.Error {
	if k.req.HasUserID && k.req.UserID != cur.UserID {
		return translate.ErrBadParam("user_id differs from the key's owner: an update cannot move a key")
	}
	if withProject && k.req.ProjectID != "" && k.req.ProjectID != cur.ProjectID {
		return translate.ErrBadParam("project_id differs from the key's project: an update cannot move a key")
	}
	return nil
}
