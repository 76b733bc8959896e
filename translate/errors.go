package translate

import (
	"errors"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Code is a dialect-neutral error kind. Each dialect renders it its own way.
type Code uint8

const (
	CodeNone         Code = iota
	CodeBadBody           // 400, body invalid (oscred IAM.0011)
	CodeBadParam          // 400, parameter invalid (oscred IAM.0007)
	CodeUnauthorized      // 401
	CodeForbidden         // 403
	CodeNotFound          // 404
	CodeMethod            // 405
	CodeConflict          // 409
	CodeTooLarge          // 413
	CodeMediaType         // 415
	CodeQuota             // too many keys: oscred 400 akSkNumExceed, ibm 409, keystone 403
	CodeRateLimited       // 429
	CodeInternal          // 500
	CodeNotImpl           // 501
	CodeBadGateway        // 502
	CodeUnavailable       // 503
	CodeTimeout           // 504
)

// Error is what handlers return: a status, a neutral code and a message that is
// safe to show the client (it never carries tokens or secrets).
type Error struct {
	Status  int
	Code    Code
	Message string
	// cause is what went wrong underneath, for the operator: logged once at the
	// edge (the access line's error field), never rendered to the client, since
	// it may name internal addresses.
	cause error
}

func (e *Error) Error() string { return e.Message }

// WithCause keeps err as e's cause and returns e. e must be the caller's own
// (the constructors below make a new one each time).
func (e *Error) WithCause(err error) *Error {
	e.cause = err
	return e
}

// Unwrap is the cause (nil when none), so errors.Is and errors.As see through e.
func (e *Error) Unwrap() error { return e.cause }

// Detail is the message with its cause, for logs: never for a client.
func (e *Error) Detail() string {
	if e.cause == nil {
		return e.Message
	}
	return e.Message + ": " + e.cause.Error()
}

// Errorf-free constructors keep the call sites short and the statuses consistent.
func ErrBadBody(msg string) *Error  { return &Error{Status: 400, Code: CodeBadBody, Message: msg} }
func ErrBadParam(msg string) *Error { return &Error{Status: 400, Code: CodeBadParam, Message: msg} }
func ErrUnauthorized(msg string) *Error {
	return &Error{Status: 401, Code: CodeUnauthorized, Message: msg}
}
func ErrForbidden(msg string) *Error  { return &Error{Status: 403, Code: CodeForbidden, Message: msg} }
func ErrNotFound(msg string) *Error   { return &Error{Status: 404, Code: CodeNotFound, Message: msg} }
func ErrMethod(msg string) *Error     { return &Error{Status: 405, Code: CodeMethod, Message: msg} }
func ErrTooLarge(msg string) *Error   { return &Error{Status: 413, Code: CodeTooLarge, Message: msg} }
func ErrMediaType(msg string) *Error  { return &Error{Status: 415, Code: CodeMediaType, Message: msg} }
func ErrNotImpl(msg string) *Error    { return &Error{Status: 501, Code: CodeNotImpl, Message: msg} }
func ErrBadGateway(msg string) *Error { return &Error{Status: 502, Code: CodeBadGateway, Message: msg} }
func ErrUnavailable(msg string) *Error {
	return &Error{Status: 503, Code: CodeUnavailable, Message: msg}
}
func ErrTimeout(msg string) *Error { return &Error{Status: 504, Code: CodeTimeout, Message: msg} }

// QuotaMessage is the text every quota error carries; Keystone's own wording.
const QuotaMessage = "Unable to create additional credentials: quota exceeded (at most 2 permanent access keys per user)"

// ErrQuota is the quota error; its status depends on who it is rendered for.
func ErrQuota() *Error { return &Error{Status: 400, Code: CodeQuota, Message: QuotaMessage} }

// StatusFor is the HTTP status e is answered with to side s. Only the quota error
// differs by side: oscred 400, ibm 409, keystone 403.
func (e *Error) StatusFor(s Side) int {
	if e.Code == CodeQuota {
		switch s {
		case SideIBM:
			return 409
		case SideKeystone:
			return 403
		}
		return 400
	}
	if s.Dialect == Oscred && e.Status == 405 && e.Code != CodeMethod {
		// ec2blob's 405 means "no privileges on the account": oscred calls that 403.
		return 403
	}
	return e.Status
}

// oscredCode is the Huawei error_code for a neutral code.
func oscredCode(e *Error, status int) string {
	switch e.Code {
	case CodeQuota:
		return "akSkNumExceed"
	case CodeBadBody:
		return "IAM.0011"
	case CodeBadParam:
		return "IAM.0007"
	}
	switch status {
	case 400:
		return "IAM.0011"
	case 401:
		return "IAM.0001"
	case 403, 405:
		return "IAM.0003"
	case 404:
		return "IAM.0004"
	case 409:
		return "IAM.0005"
	case 429:
		return "IAM.0012"
	}
	return "IAM.0006"
}

// AppendError renders e for side s: oscred clients get both the Keystone and the
// Huawei gateway shape in one object; ec2blob clients the Keystone shape.
func AppendError(dst []byte, s Side, e *Error) []byte {
	status := e.StatusFor(s)
	dst = append(dst, `{"error":{"code":`...)
	dst = appendInt(dst, status)
	dst = append(dst, `,"title":`...)
	dst = appendString(dst, StatusText(status))
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, e.Message)
	dst = append(dst, '}')
	if s.Dialect == Oscred {
		dst = append(dst, `,"error_code":`...)
		dst = appendString(dst, oscredCode(e, status))
		dst = append(dst, `,"error_msg":`...)
		dst = appendString(dst, e.Message)
	}
	return append(dst, '}')
}

// ParseUpstreamError reads an upstream error answer of side s with HTTP status and
// maps it to a neutral Error, accepting either error shape (Keystone or Huawei
// gateway). op matters for the quota mapping: ec2blob 409 on create is a quota
// error; oscred akSkNumExceed is one too, as error_code or as the Keystone
// shape's error.message.
func ParseUpstreamError(s Side, op Op, status int, body []byte) *Error {
	msg, code := "", ""
	if len(body) > 0 && gjson.ValidBytes(body) {
		str := unsafe.String(unsafe.SliceData(body), len(body))
		r := gjson.Get(str, "error.message")
		if r.Type != gjson.String {
			r = gjson.Get(str, "error_msg")
		}
		if r.Type == gjson.String {
			msg = strings.Clone(r.Str)
		}
		if c := gjson.Get(str, "error_code"); c.Type == gjson.String {
			code = c.Str
		}
	}
	if msg == "" {
		msg = StatusText(status)
		if msg == "" {
			msg = "upstream error"
		}
	}
	if msg = "upstream: " + msg; len(msg) > 512 {
		msg = strings.ToValidUTF8(cutRunes(msg, 512), "")
	}
	e := &Error{Status: status, Message: msg}
	switch {
	case s.Dialect == Oscred && status >= 400 && status < 500 && (code == "akSkNumExceed" || strings.Contains(msg, "akSkNumExceed")),
		s == SideIBM && status == 409 && op == OpCreate,
		s == SideKeystone && status == 403 && op == OpCreate && strings.Contains(msg, "Unable to create additional credentials"):
		e.Code = CodeQuota
		e.Message = QuotaMessage
	case status < 400 || status > 599:
		// A success status in an error path, or nonsense: the upstream misbehaved.
		e.Status, e.Code = 502, CodeBadGateway
	default:
		e.Code = codeForStatus(status)
	}
	if e.Status >= 500 {
		// A backend's own failure text names its insides (database hosts,
		// addresses, stack frames): the operator gets it in the access line,
		// the client a plain statement.
		e.cause, e.Message = errors.New(msg), "upstream failed: "+StatusText(status)
		if e.Message == "upstream failed: " {
			e.Message += "unexpected answer"
		}
	}
	return e
}

func codeForStatus(status int) Code {
	switch status {
	case 400:
		return CodeBadBody
	case 401:
		return CodeUnauthorized
	case 403:
		return CodeForbidden
	case 404:
		return CodeNotFound
	case 405:
		return CodeForbidden // the account-privilege meaning; see StatusFor
	case 409:
		return CodeConflict
	case 413:
		return CodeTooLarge
	case 415:
		return CodeMediaType
	case 429:
		return CodeRateLimited
	case 501:
		return CodeNotImpl
	case 502:
		return CodeBadGateway
	case 503:
		return CodeUnavailable
	case 504:
		return CodeTimeout
	}
	return CodeInternal
}

var codeNames = [...]string{CodeNone: "none", CodeBadBody: "bad_body", CodeBadParam: "bad_param",
	CodeUnauthorized: "unauthorized", CodeForbidden: "forbidden", CodeNotFound: "not_found", CodeMethod: "method",
	CodeConflict: "conflict", CodeTooLarge: "too_large", CodeMediaType: "media_type", CodeQuota: "quota",
	CodeRateLimited: "rate_limited", CodeInternal: "internal", CodeNotImpl: "not_implemented",
	CodeBadGateway: "bad_gateway", CodeUnavailable: "unavailable", CodeTimeout: "timeout"}

// String is the code's dialect-neutral name (audit reasons, error.type).
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "unknown"
}

// statusTexts are the reason phrases of the statuses the bridge answers with
// (RFC 9110's), kept here so translate needs no net/http.
var statusTexts = map[int]string{
	200: "OK", 201: "Created", 204: "No Content",
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	406: "Not Acceptable", 408: "Request Timeout", 409: "Conflict", 410: "Gone", 412: "Precondition Failed",
	413: "Request Entity Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Entity", 429: "Too Many Requests",
	500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}

// StatusText is the reason phrase of an HTTP status ("" when unknown), as net/http's.
func StatusText(status int) string { return statusTexts[status] }

// cutRunes cuts s to at most n bytes, not inside a UTF-8 character.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
