package proxy

import (
	"context"

	"github.com/credbridge/credbridge/migrate"
	"github.com/credbridge/credbridge/translate"
)

// Mirror is told what the primary did, for migration (migrate's mirror and
// shadow); nil when migration is off.
type Mirror interface {
	// Wrote is called once a write succeeded on the primary, before the
	// client's answer: it makes the write durable (the journal) and returns.
	// An error is logged with its cause and counted by the mirror; the client
	// still gets the primary's answer (the write happened there, and a create's
	// secret is shown only this once).
	Wrote(ctx context.Context, w migrate.Write) error
	// Read is called after the primary answered a get or list. It must not
	// block: shadow work runs off the request's path. r's strings may point
	// into pooled buffers (the upstream's answer): Read copies what it keeps.
	Read(ctx context.Context, r migrate.Read)
}

// caller is k's caller for the mirror.
func caller(k *call) migrate.Caller {
	return migrate.Caller{UserID: k.who.UserID, ProjectID: k.who.ProjectID, Token: k.token}
}

// wrote tells the mirror of a write the primary confirmed.
func (s *Server) wrote(k *call, op translate.Op, key translate.Cred) {
	if s.mirror == nil {
		return
	}
	if err := s.mirror.Wrote(k.ctx, migrate.Write{Op: op, Key: key, Caller: caller(k)}); err != nil {
		s.log.Error("migration: write not journaled", "op", op.String(), "err", err.Error())
	}
}

// mirrorsReads says whether read answers should be collected for the mirror.
func (s *Server) mirrorsReads() bool { return s.mirror != nil }

// read tells the mirror of a read the primary answered.
func (s *Server) read(k *call, op translate.Op, access, user string, keys []translate.Cred) {
	if s.mirror == nil {
		return
	}
	s.mirror.Read(k.ctx, migrate.Read{Op: op, Access: access, UserFilter: user, Keys: keys, Caller: caller(k)})
}
