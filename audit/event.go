// Package audit writes the bridge's audit trail: one JSON line per key
// operation and per refusal, shaped after the CADF events Keystone's audit
// middleware emits, flattened so a line greps and jq's without nesting.
//
// A line looks like (one line in the file; wrapped here):
//
//	{"time":"2026-12-01T21:40:00.123456Z","action":"update","outcome":"denied",
//	 "reason_status":403,"reason_code":"forbidden",
//	 "initiator_user_id":"u-bob","initiator_project_id":"p-1","initiator_address":"127.0.0.1:50412",
//	 "target_access_key":"AKIA...","target_owner":"u-alice",
//	 "client_dialect":"ec2blob-ibm","upstream":"oscred","request_id":"...","trace_id":"..."}
//
// CADF's event fields map as: eventTime → time, action, outcome,
// reason.reasonCode → reason_status (reasonType HTTP), initiator.id →
// initiator_user_id, initiator.project_id, initiator.host.address →
// initiator_address, target.id → target_access_key. Empty fields are left
// out. An Event has no field for a token, a secret or a body: the shape itself
// keeps them out of the trail.
package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Actions an event records.
const (
	ActionCreate        = "create"
	ActionList          = "list"
	ActionGet           = "get"
	ActionUpdate        = "update"
	ActionDelete        = "delete"
	ActionTemporaryKeys = "temporary_keys"
)

// Outcomes: success (2xx), denied (the policy or the token refused: 401, 403),
// failure (anything else).
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Outcome classifies an HTTP status the way the trail does.
func Outcome(status int) string {
	switch {
	case status >= 200 && status < 300:
		return OutcomeSuccess
	case status == 401 || status == 403:
		return OutcomeDenied
	}
	return OutcomeFailure
}

// Event is one audited request. Strings that come from clients (user ids,
// access keys, addresses) are escaped on the way out, whatever they hold.
type Event struct {
	Time    time.Time // zero: the time Log is called
	Action  string    // create|list|get|update|delete|temporary_keys
	Outcome string    // success|failure|denied ("": from Status, see Outcome)
	// Status is the HTTP status the client got; Code the dialect-neutral
	// error code ("" on success).
	Status int
	Code   string
	// Initiator: the caller as the identity service named it, and its address.
	UserID, ProjectID, ClientAddr string
	// Target: the access key acted on and its owner ("" when unknown, e.g. a
	// refused create or a list).
	AccessKey, Owner string
	// ClientDialect and Upstream are translate.Side names.
	ClientDialect, Upstream string
	RequestID, TraceID      string
}

// AppendJSON appends e as one JSON object and a newline.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = field(b, "action", e.Action)
	outcome := e.Outcome
	if outcome == "" {
		outcome = Outcome(e.Status)
	}
	b = field(b, "outcome", outcome)
	b = append(b, `,"reason_status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = field(b, "reason_code", e.Code)
	b = field(b, "initiator_user_id", e.UserID)
	b = field(b, "initiator_project_id", e.ProjectID)
	b = field(b, "initiator_address", e.ClientAddr)
	b = field(b, "target_access_key", e.AccessKey)
	b = field(b, "target_owner", e.Owner)
	b = field(b, "client_dialect", e.ClientDialect)
	b = field(b, "upstream", e.Upstream)
	b = field(b, "request_id", e.RequestID)
	b = field(b, "trace_id", e.TraceID)
	return append(b, "}\n"...)
}

// field appends ,"name":"value", or nothing when value is empty.
func field(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendQuoted(b, value)
}

const hex = "0123456789abcdef"

// appendQuoted appends s as a JSON string that is valid UTF-8 whatever s
// holds: quotes, backslashes and control characters escaped, invalid bytes
// replaced by U+FFFD, and U+2028/U+2029 escaped too (JavaScript and some
// line-oriented readers take them for line ends, which would let a hostile
// user id split an audit line in two).
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
