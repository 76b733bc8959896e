// Package migrate keeps a second cloud in step with the primary: the neutral key
// model and its comparison, the journal of mirrored writes, and the worker that
// applies them (migration.md). It knows dialects only through translate and
// backends through upstream; it never imports proxy.
package migrate

import "github.com/credbridge/credbridge/translate"

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
// Keys are the primary's answer in the neutral model, already copied (safe to
// keep). For a list, UserFilter is the user whose keys were listed.
type Read struct {
	Op         translate.Op
	Access     string // get: the key read
	UserFilter string // list: whose keys
	Keys       []translate.Cred
	Caller     Caller
}
