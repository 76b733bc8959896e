package proxy

import (
	"net/http"

	"github.com/credbridge/credbridge/translate"
)

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
	switch {
	case a.Status == http.StatusNoContent || a.Status == http.StatusOK:
		s.wrote(k, translate.OpDelete, translate.Cred{Access: ak, ID: upID, UserID: owner})
		s.owners.Forget(k.ctx, upID)
		if ak != "" {
			s.seen.forget(ak)
		}
		return s.reply(k, http.StatusNoContent, nil, a)
	case s.same(k):
		return s.pass(k, a)
	}
	return s.upError(translate.OpDelete, a)
}
