// Package migrate keeps a second cloud in step with the primary: the neutral key
// model and its comparison, the journal of mirrored writes, and the worker that
// applies them (migration.md). It knows dialects only through translate and
// backends through upstream; it never imports proxy.
package migrate

import (
	"strings"

	"github.com/credbridge/credbridge/translate"
)

// Caller is who made a request, as the primary's policy saw them.
type Caller struct {
	UserID, ProjectID string
	// Token is the caller's own token: for a passthrough secondary with
	// shared_identity only. Memory only: never journaled, logged or counted.
	Token string
}

// Write is a write the primary confirmed. Key holds the target state: on create
// the access key, the secret (the one time the bridge sees it), owner, project,
// status and description; on update the state after the update; on delete the
// access key and owner. Strings may point into pooled buffers: copy what you keep.
type Write struct {
	Op     translate.Op
	Key    translate.Cred
	Caller Caller
}

// Read is a read the primary answered (get or list), for shadow comparison.
// Keys are the primary's answer. For a list, UserFilter is the user whose keys
// were listed. Like Write's, its strings may point into pooled buffers that the
// next request overwrites: Mirror.Read queues an owned copy.
type Read struct {
	Op         translate.Op
	Access     string // get: the key read
	UserFilter string // list: whose keys
	Keys       []translate.Cred
	Caller     Caller
}

// owned is r with every string copied out of the buffers it may point into.
func (r Read) owned() Read {
	r.Access, r.UserFilter = strings.Clone(r.Access), strings.Clone(r.UserFilter)
	r.Caller = r.Caller.owned()
	keys := make([]translate.Cred, len(r.Keys))
	for i, c := range r.Keys {
		keys[i] = c.Clone()
	}
	r.Keys = keys
	return r
}

func (c Caller) owned() Caller {
	return Caller{UserID: strings.Clone(c.UserID), ProjectID: strings.Clone(c.ProjectID), Token: strings.Clone(c.Token)}
}

// owned is d with its strings copied: the ring keeps it past the request.
func (d Divergence) owned() Divergence {
	for _, p := range []*string{&d.Kind, &d.Access, &d.Owner, &d.Primary, &d.Secondary, &d.Op, &d.At} {
		*p = strings.Clone(*p)
	}
	return d
}
