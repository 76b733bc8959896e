package translate

import (
	"net/http"
	"strings"
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
}

func (e *Error) Error() string { return e.Message }

// Errorf-free constructors keep the call sites short and the statuses consistent.
func ErrBadBody(msg string) *Error      { return &Error{400, CodeBadBody, msg} }
func ErrBadParam(msg string) *Error     { return &Error{400, CodeBadParam, msg} }
func ErrUnauthorized(msg string) *Error { return &Error{401, CodeUnauthorized, msg} }
func ErrForbidden(msg string) *Error    { return &Error{403, CodeForbidden, msg} }
func ErrNotFound(msg string) *Error     { return &Error{404, CodeNotFound, msg} }
func ErrMethod(msg string) *Error       { return &Error{405, CodeMethod, msg} }
func ErrTooLarge(msg string) *Error     { return &Error{413, CodeTooLarge, msg} }
func ErrMediaType(msg string) *Error    { return &Error{415, CodeMediaType, msg} }
func ErrNotImpl(msg string) *Error      { return &Error{501, CodeNotImpl, msg} }
func ErrBadGateway(msg string) *Error   { return &Error{502, CodeBadGateway, msg} }
func ErrUnavailable(msg string) *Error  { return &Error{503, CodeUnavailable, msg} }
func ErrTimeout(msg string) *Error      { return &Error{504, CodeTimeout, msg} }

// QuotaMessage is the text every quota error carries; Keystone's own wording.
const QuotaMessage = "Unable to create additional credentials: quota exceeded (at most 2 permanent access keys per user)"

// ErrQuota is the quota error; its status depends on who it is rendered for.
func ErrQuota() *Error { return &Error{400, CodeQuota, QuotaMessage} }

// StatusFor is the HTTP status e is answered with to side s. Only the quota error
// differs by side: oscred 400, ibm 409, keystone 403.
func (e *Error) StatusFor(s Side) int {
	if e.Code == CodeQuota {
		switch s {
		case SideIBM:
			return http.StatusConflict
		case SideKeystone:
			return http.StatusForbidden
		}
		return http.StatusBadRequest
	}
	if s.Dialect == Oscred && e.Status == http.StatusMethodNotAllowed && e.Code != CodeMethod {
		// ec2blob's 405 means "no privileges on the account": oscred calls that 403.
		return http.StatusForbidden
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
	dst = appendString(dst, http.StatusText(status))
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
// error; oscred 400 akSkNumExceed is one too.
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
		msg = http.StatusText(status)
		if msg == "" {
			msg = "upstream error"
		}
	}
	if msg = "upstream: " + msg; len(msg) > 512 {
		msg = msg[:512]
	}
	e := &Error{Status: status, Message: msg}
	switch {
	case s.Dialect == Oscred && status == 400 && code == "akSkNumExceed",
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
