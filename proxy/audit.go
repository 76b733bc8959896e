package proxy

import (
	"net"

	"github.com/credbridge/credbridge/audit"
)

// auditEvent writes the trail's event for a key operation or temporary-key
// request, allowed or refused (identity look-ups and unknown routes act on no
// key and are not audited). Never a token or a secret: the event has no field
// for either.
func (s *Server) auditEvent(k *call, status int) {
	if s.audit == nil || k.rt.label == "lookup" || k.rt.label == "none" {
		return
	}
	r := k.c.Request()
	e := audit.Event{Action: k.rt.opLabel(), Status: status, AccessKey: k.target, Owner: k.owner,
		ClientDialect: k.client.String(), Upstream: s.side.String(), RequestID: k.reqID, TraceID: s.traceID(k, r)}
	if k.err != nil {
		e.Code = k.err.Code.String()
	}
	if k.who != nil {
		e.UserID, e.ProjectID = k.who.UserID, k.who.ProjectID
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		e.ClientAddr = host
	}
	s.audit.Log(e)
}
