package migrate

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/credbridge/credbridge/translate"
)

func keyPath(s translate.Side, ak string) string { return translate.BasePath(s) + "/" + s.ID(ak) }

// call makes one request to the secondary with the entry's caller token when
// the secondary is passthrough.
func (m *Mirror) call(ctx context.Context, e Entry, method, path string, body []byte) (int, []byte, error) {
	tok := ""
	if m.o.Config.Secondary.Auth.Mode == "passthrough" {
		t, ok := m.tokens.Load(e.ID)
		if !ok {
			return 0, nil, ErrNoCallerToken
		}
		tok = t.(string)
	}
	return m.o.Backend.Call(ctx, Call{Method: method, Path: path, Body: body, CallerToken: tok})
}

// apply brings the secondary to e's target state. It is idempotent: an entry
// applied twice (a crash between apply and Done, two replicas) changes nothing
// the second time. why is for logs and spans: never a secret.
func (m *Mirror) apply(ctx context.Context, e Entry) (outcome, why string) {
	switch e.Op {
	case "create":
		return m.applyCreate(ctx, e)
	case "update":
		return m.applyUpdate(ctx, e)
	case "delete":
		return m.applyDelete(ctx, e)
	}
	return OutcomeFailed, "unknown op " + strconv.Quote(e.Op)
}

// transient says whether a status is worth retrying: the secondary may get
// better (5xx, 429, auth fixed by the operator, a quota freed).
func transient(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusUnauthorized ||
		status == http.StatusForbidden || status == http.StatusConflict || status == http.StatusRequestTimeout
}

func statusWhy(what string, status int) string {
	return what + ": secondary answered " + strconv.Itoa(status)
}

func (m *Mirror) applyCreate(ctx context.Context, e Entry) (string, string) {
	secret, err := m.sealer.Open(e.Access, e.Sealed)
	if err != nil {
		return OutcomeFailed, err.Error()
	}
	c := translate.Cred{Access: e.Access, Secret: secret, UserID: e.Owner, ProjectID: e.Project,
		Status: statusOf(e.Status), Description: e.Desc, HasDescription: e.HasDesc}
	st, _, err := m.call(ctx, e, http.MethodPost, translate.BasePath(m.side), translate.AppendRequest(nil, m.side, translate.OpCreate, c))
	if err != nil {
		m.health.reach(err)
		return OutcomeRetry, "create: " + err.Error()
	}
	m.health.reach(nil)
	if st == http.StatusCreated || st == http.StatusOK {
		return OutcomeDone, ""
	}
	if st >= 500 || st == http.StatusTooManyRequests {
		return OutcomeRetry, statusWhy("create", st)
	}
	// Refused: perhaps the key is already there (applied before a crash, by
	// another replica, or created on the secondary by someone else).
	cur, found, gst, err := m.fetch(ctx, e)
	switch {
	case err != nil:
		return OutcomeRetry, "create: " + err.Error()
	case found && cur.Secret == secret:
		return OutcomeDone, ""
	case found:
		m.diverge(ctx, Divergence{Kind: KindSecret, Access: e.Access, Owner: e.Owner, Op: e.Op,
			Primary: m.fp.Of(secret), Secondary: m.fp.Of(cur.Secret)})
		return OutcomeFailed, "create: the key exists on the secondary with another secret; not overwritten"
	case gst != http.StatusNotFound:
		return OutcomeRetry, statusWhy("create (reading the key back)", gst)
	case transient(st):
		return OutcomeRetry, statusWhy("create", st) // e.g. quota: an older delete may free it
	}
	return OutcomeFailed, statusWhy("create", st)
}

// fetch reads e's key from the secondary; found is false on 404.
func (m *Mirror) fetch(ctx context.Context, e Entry) (translate.Cred, bool, int, error) {
	st, body, err := m.call(ctx, e, http.MethodGet, m.keyPathOf(e), nil)
	if err != nil {
		m.health.reach(err)
		return translate.Cred{}, false, 0, err
	}
	if st != http.StatusOK {
		return translate.Cred{}, false, st, nil
	}
	c, ok := translate.ParseAnswer(m.side, body)
	if !ok {
		return c, false, st, errors.New("secondary answered a get with something that is not a credential")
	}
	return c.Clone(), true, st, nil
}

func (m *Mirror) keyPathOf(e Entry) string {
	if e.Access == "" { // a delete known only by its Keystone id
		return translate.BasePath(m.side) + "/" + e.KeyID
	}
	return keyPath(m.side, e.Access)
}

// applyUpdate writes the target state. An ec2blob secondary stores the blob as
// sent, so the current blob (secret included) is read and written back whole.
func (m *Mirror) applyUpdate(ctx context.Context, e Entry) (string, string) {
	cur, found, st, err := m.fetch(ctx, e)
	switch {
	case err != nil:
		return OutcomeRetry, "update: " + err.Error()
	case !found && st == http.StatusNotFound && m.deletedLater(ctx, e):
		return OutcomeDone, "" // its create was moot: the key's later delete is the target state
	case !found && st == http.StatusNotFound:
		m.diverge(ctx, Divergence{Kind: KindMissingOnSecondary, Access: e.Access, Owner: e.Owner, Op: e.Op})
		return OutcomeFailed, "update: the key is not on the secondary (migrate sync copies it)"
	case !found:
		return OutcomeRetry, statusWhy("update (reading the key)", st)
	case cur.Secret == "":
		return OutcomeFailed, "update: the secondary did not disclose the key's blob in full; not overwritten"
	}
	if s := statusOf(e.Status); s != translate.StatusUnset {
		cur.Status = s
	}
	if e.HasDesc {
		cur.Description, cur.HasDescription = e.Desc, true
	}
	if e.Sealed != nil {
		if cur.Secret, err = m.sealer.Open(e.Access, e.Sealed); err != nil {
			return OutcomeFailed, "update: " + err.Error()
		}
	}
	st, _, err = m.call(ctx, e, http.MethodPatch, m.keyPathOf(e), translate.AppendRequest(nil, m.side, translate.OpUpdate, cur))
	switch {
	case err != nil:
		m.health.reach(err)
		return OutcomeRetry, "update: " + err.Error()
	case st == http.StatusOK:
		return OutcomeDone, ""
	case transient(st):
		return OutcomeRetry, statusWhy("update", st)
	}
	return OutcomeFailed, statusWhy("update", st)
}

func (m *Mirror) applyDelete(ctx context.Context, e Entry) (string, string) {
	if e.Access == "" && !m.side.HashIDs() {
		return OutcomeFailed, "delete: only the Keystone id is known and the secondary names keys by access key"
	}
	st, _, err := m.call(ctx, e, http.MethodDelete, m.keyPathOf(e), nil)
	switch {
	case err != nil:
		m.health.reach(err)
		return OutcomeRetry, "delete: " + err.Error()
	case st == http.StatusNoContent || st == http.StatusOK || st == http.StatusNotFound:
		return OutcomeDone, "" // absent counts as done
	case transient(st):
		return OutcomeRetry, statusWhy("delete", st)
	}
	return OutcomeFailed, statusWhy("delete", st)
}

func statusOf(s string) translate.Status {
	switch s {
	case "active":
		return translate.StatusActive
	case "inactive":
		return translate.StatusInactive
	}
	return translate.StatusUnset
}
