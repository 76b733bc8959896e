package proxy

import (
	"net/http"

	"github.com/credbridge/credbridge/translate"
)

// securityTokens passes temporary-key requests to an oscred upstream, with the
// caller's own token whatever upstream.auth says: with the service token the
// upstream would issue the service account's temporary keys to this caller.
// ec2blob has no counterpart.
func (s *Server) securityTokens(k *call) *translate.Error {
	if s.side != translate.SideOscred {
		return translate.ErrNotImpl("temporary access keys have no counterpart on this upstream")
	}
	if err := k.readToken(); err != nil {
		return err
	}
	if err := s.readBody(k); err != nil {
		return err
	}
	if err := translate.ScanBody(k.body); err != nil {
		return err
	}
	if err := s.authenticate(k); err != nil {
		return err
	}
	k.endPolicy(true, "caller's own token")
	a, err := s.sendTo(k, s.up, k.token, http.MethodPost, "/v3.0/OS-CREDENTIAL/securitytokens", "", k.body)
	if err != nil {
		return err
	}
	return s.pass(k, a)
}
