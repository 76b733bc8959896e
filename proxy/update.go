package proxy

import (
	"net/http"

	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
)

// update changes a key's status, description (and, ec2blob to ec2blob, its
// blob); no update path can move a key to another owner.
func (s *Server) update(k *call) *translate.Error {
	upID, ak, err := s.resolve(k)
	if err != nil {
		return err
	}
	switch {
	case s.same(k):
		return s.updateSame(k, upID, ak)
	case s.side.Dialect == translate.Oscred:
		return s.updateToOscred(k, upID, ak)
	}
	return s.updateToEC2(k, upID)
}

func (s *Server) updateMethod() string {
	if s.side.Dialect == translate.Oscred {
		return http.MethodPut
	}
	return http.MethodPatch
}

// authorizeUpdate decides an update whose body goes upstream as the client
// wrote it: the owner is looked up when the body names one, which must be it.
func (s *Server) authorizeUpdate(k *call, upID string) *translate.Error {
	if k.req.ProjectID != "" && s.side.Dialect == translate.EC2Blob {
		// The project goes upstream too: the current one is needed to hold it.
		cur, _, err := s.fetch(k, upID)
		if err != nil {
			return err
		}
		if d := s.decide(k, cur.UserID); !d.Allowed {
			return s.deny(k)
		}
		return noMove(k, cur, true)
	}
	owner, err := s.authorize(k, upID, k.req.HasUserID)
	if err != nil {
		return err
	}
	return noMove(k, translate.Cred{UserID: owner}, false)
}

// updateSame forwards the scanned body (one reading); a user_id in it must be
// the key's owner, as on every update path.
func (s *Server) updateSame(k *call, upID, ak string) *translate.Error {
	if err := s.authorizeUpdate(k, upID); err != nil {
		return err
	}
	a, err := s.send(k, s.updateMethod(), s.keyPath(upID), "", k.body)
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
}

// updateToOscred: an ec2blob client's update becomes status and description
// (all oscred stores; checkCross refused bodies with neither).
func (s *Server) updateToOscred(k *call, upID, ak string) *translate.Error {
	if err := s.authorizeUpdate(k, upID); err != nil {
		return err
	}
	a, err := s.sendOut(k, s.updateMethod(), s.keyPath(upID), translate.AppendRequest(k.out[:0], s.side, translate.OpUpdate, k.req))
	if err != nil {
		return err
	}
	return s.answerUpdate(k, a, ak, k.req)
}

// updateToEC2: toward an ec2blob upstream the whole blob is written back, so
// the current one is read and the change merged into it.
func (s *Server) updateToEC2(k *call, upID string) *translate.Error {
	cur, _, err := s.fetch(k, upID)
	if err != nil {
		return err
	}
	if d := s.decide(k, cur.UserID); !d.Allowed {
		return s.deny(k)
	}
	if err := noMove(k, cur, true); err != nil {
		return err
	}
	merged := merge(cur, k.req)
	if merged.Access == "" || merged.Secret == "" {
		// Writing a blob without its secret would erase the key's secret upstream.
		return translate.ErrBadGateway("upstream did not return the key's blob in full; refusing to overwrite it")
	}
	a, err := s.sendOut(k, s.updateMethod(), s.keyPath(upID), translate.AppendRequest(k.out[:0], s.side, translate.OpUpdate, merged))
	if err != nil {
		return err
	}
	return s.answerUpdate(k, a, merged.Access, k.req)
}

// merge applies what an update request sets to the current key.
func merge(cur, req translate.Cred) translate.Cred {
	if req.Status != translate.StatusUnset {
		cur.Status = req.Status
	}
	if req.HasDescription {
		cur.Description, cur.HasDescription = req.Description, true
	}
	if req.Secret != "" {
		cur.Secret = req.Secret
	}
	return cur // project_id: noMove held it to the key's own
}

// answerUpdate renders an upstream's update answer for a client of another dialect.
func (s *Server) answerUpdate(k *call, a upstream.Answer, ak string, req translate.Cred) *translate.Error {
	if a.Status != http.StatusOK {
		return s.upError(translate.OpUpdate, a)
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
