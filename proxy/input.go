package proxy

import (
	"io"
	"net/url"
	"strings"

	"github.com/credbridge/credbridge/translate"
)

// checked serves a key operation once its input has passed every check and
// the caller's token has been turned into an identity.
func (s *Server) checked(op func(*call) *translate.Error) func(*call) *translate.Error {
	return func(k *call) *translate.Error {
		if err := s.checkInput(k); err != nil {
			return err
		}
		if err := s.authenticate(k); err != nil {
			return err
		}
		return op(k)
	}
}

// checkInput applies every check of dialects.md "Input checks" that needs no
// identity: a request failing one never reaches the identity service or the
// upstream.
func (s *Server) checkInput(k *call) *translate.Error {
	r := k.c.Request()
	if k.op == translate.OpGet || k.op == translate.OpUpdate || k.op == translate.OpDelete {
		if strings.IndexByte(k.id, '/') >= 0 { // echo's last parameter spans segments
			return translate.ErrNotFound("no such resource: " + r.URL.Path)
		}
		if !translate.ValidID(k.client, k.id) {
			if k.client.HashIDs() {
				return translate.ErrBadParam("credential id must be 64 lower-case hex characters (sha256 of the access key)")
			}
			return translate.ErrBadParam("access key id must be 1-128 characters of A-Za-z0-9")
		}
	}
	if err := k.readToken(); err != nil {
		return err
	}
	if k.op == translate.OpList {
		if err := k.readFilters(r.URL.RawQuery); err != nil {
			return err
		}
	}
	if k.op != translate.OpCreate && k.op != translate.OpUpdate {
		return nil
	}
	if err := s.readBody(k); err != nil {
		return err
	}
	req, err := translate.ParseRequest(k.client, k.op, k.body)
	if err != nil {
		return err
	}
	k.req = req
	return s.checkCross(k)
}

// readBody checks the body's content type and hands over the body the
// wrapper read (slurp) before the request took a concurrency slot.
func (s *Server) readBody(k *call) *translate.Error {
	if !isJSONType(k.c.Request().Header.Get("Content-Type")) {
		return translate.ErrMediaType("Content-Type must be application/json")
	}
	if !k.slurped {
		k.bodyErr = s.slurp(k)
	}
	return k.bodyErr
}

// slurp reads a body of at most limits.max_body_bytes into k's pooled buffer.
// The wrapper calls it before taking a concurrency slot: a client trickling a
// body holds a connection and a goroutine, never a slot real callers need.
func (s *Server) slurp(k *call) *translate.Error {
	k.slurped = true
	r := k.c.Request()
	if r.ContentLength > s.maxBody {
		return translate.ErrTooLarge("request body exceeds the limit")
	}
	b := k.body[:0]
	defer func() { k.body = b }()
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > s.maxBody {
			return translate.ErrTooLarge("request body exceeds the limit")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return translate.ErrBadBody("cannot read the request body")
		}
	}
}

// isJSONType accepts application/json with any parameters, in any letter case.
func isJSONType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// readFilters checks list filters. Unknown parameters are not forwarded.
func (k *call) readFilters(raw string) *translate.Error {
	if raw == "" {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return translate.ErrBadParam("malformed query string")
	}
	// An array, not a map: the same order every time, and k stays on the stack.
	for _, f := range [...]struct {
		name string
		dst  *string
	}{{"user_id", &k.userFilter}, {"project_id", &k.projectFilter}} {
		name, dst := f.name, f.dst
		v, ok := q[name]
		if !ok {
			continue
		}
		if len(v) != 1 || !translate.ValidQueryValue(v[0]) {
			return translate.ErrBadParam(name + " must be given once, 1-255 printable characters")
		}
		*dst = v[0]
	}
	if t, ok := q["type"]; ok && (len(t) != 1 || t[0] != "ec2") && k.client.Dialect == translate.EC2Blob {
		return translate.ErrBadParam(`type filter must be "ec2": the bridge manages access keys only`)
	}
	return nil
}

// checkCross applies the body rules that depend on the path and on the upstream.
func (s *Server) checkCross(k *call) *translate.Error {
	c := &k.req
	if k.client.Dialect == translate.EC2Blob && k.op == translate.OpUpdate && c.Access != "" {
		if k.client.HashIDs() && translate.HashID(c.Access) != k.id {
			return translate.ErrBadParam("blob.access does not match the credential id (sha256 of the access key)")
		}
		if !k.client.HashIDs() && c.Access != k.id {
			return translate.ErrBadParam("blob.access does not match the access key in the path")
		}
	}
	if k.client == s.side || k.client.Dialect != translate.EC2Blob || s.side.Dialect != translate.Oscred {
		return nil
	}
	// ec2blob client, oscred upstream.
	switch k.op {
	case translate.OpCreate:
		if c.Access != "" || c.Secret != "" {
			return translate.ErrBadParam("upstream generates keys: blob may not carry access or secret")
		}
		if c.Status == translate.StatusInactive {
			return translate.ErrBadParam("upstream creates keys active: set the status with an update")
		}
	case translate.OpUpdate:
		if c.Status == translate.StatusUnset && !c.HasDescription {
			return translate.ErrBadParam("nothing to update: upstream stores only blob.status and blob.description")
		}
		k.warn = c.Secret != ""
	}
	return nil
}
