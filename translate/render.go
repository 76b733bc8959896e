package translate

import (
	"crypto/rand"
)

// AppendRequest renders c as the body of op for an upstream of side s. Only create
// and update carry bodies. Fields the upstream's dialect cannot store are dropped
// here (project_id to oscred, secret to oscred), which is the mapping's rule.
func AppendRequest(dst []byte, s Side, op Op, c Cred) []byte {
	dst = append(dst, `{"credential":`...)
	o := openObj(dst)
	if s.Dialect == Oscred {
		if op == OpCreate {
			o.opt("user_id", c.UserID)
		} else if c.Status != StatusUnset {
			o.str("status", c.Status.Oscred())
		}
		if c.HasDescription {
			o.str("description", c.Description)
		}
		return append(o.close(), '}')
	}
	// Keystone's PATCH takes the blob alone (Debian's fix for CVE-2026-90460,
	// keystone 2:22.0.2-0+deb12u5, refuses user_id, project_id and type).
	if s != SideKeystone || op != OpUpdate {
		o.opt("user_id", c.UserID)
		o.opt("project_id", c.ProjectID)
		o.str("type", "ec2")
	}
	if c.Access != "" || c.Secret != "" || c.Status != StatusUnset || c.HasDescription {
		o.key("blob")
		o.b = appendBlob(o.b, FormOf(s.Flavor), c, true)
	}
	return append(o.close(), '}')
}

// View says how a credential is shown to a client.
type View struct {
	Op Op
	// Form is the blob form for an ec2blob client (the one it used, else its flavor's).
	Form BlobForm
	// Secrets lets an ec2blob client see a known secret (never oscred, but on create).
	Secrets bool
	// ProjectID stands in when the credential has none (oscred upstreams never do).
	ProjectID string
	// Links is the client-facing base URL for Keystone's links.self; empty: none.
	Links string
}

// AppendAnswer renders the single-credential answer `{"credential":{...}}` for a
// client of side s.
func AppendAnswer(dst []byte, s Side, v View, c Cred) []byte {
	dst = append(dst, `{"credential":`...)
	dst = AppendCred(dst, s, v, c)
	return append(dst, '}')
}

// AppendListOpen, AppendCred (with commas between) and AppendListClose render a
// list answer element by element, so a long list is never held twice.
func AppendListOpen(dst []byte, s Side, v View) []byte {
	if s == SideKeystone && v.Links != "" {
		dst = append(dst, `{"links":{"self":`...)
		dst = appendString(dst, v.Links)
		return append(dst, `,"previous":null,"next":null},"credentials":[`...)
	}
	return append(dst, `{"credentials":[`...)
}

func AppendListClose(dst []byte) []byte { return append(dst, "]}"...) }

// AppendCred renders one credential object for a client of side s.
func AppendCred(dst []byte, s Side, v View, c Cred) []byte {
	o := openObj(dst)
	if s.Dialect == Oscred {
		return appendOscredCred(o, v, c)
	}
	o.opt("user_id", c.UserID)
	o.key("blob")
	form := v.Form
	if form == BlobNone {
		form = FormOf(s.Flavor)
	}
	o.b = appendBlob(o.b, form, c, v.Secrets)
	if c.ProjectID != "" {
		o.str("project_id", c.ProjectID)
	} else {
		o.opt("project_id", v.ProjectID)
	}
	o.str("type", "ec2")
	id := s.ID(c.Access)
	o.str("id", id)
	o.opt("subject_ibm_id", c.SubjectIBMID)
	if s == SideKeystone && v.Links != "" {
		o.key("links")
		o.b = append(o.b, `{"self":`...)
		o.b = appendString(o.b, v.Links+"/"+id)
		o.b = append(o.b, '}')
	}
	return o.close()
}

// appendOscredCred writes the fields each oscred operation answers with, in the
// order Huawei's reference shows them. Times are copied, never invented; secrets
// only on create.
func appendOscredCred(o obj, v View, c Cred) []byte {
	switch v.Op {
	case OpUpdate:
		o.opt("user_id", c.UserID)
		o.str("access", c.Access)
		o.opt("status", c.Status.Oscred())
		o.opt("create_time", c.CreateTime)
	case OpCreate:
		o.str("access", c.Access)
		o.opt("secret", c.Secret)
		o.opt("user_id", c.UserID)
		o.str("status", orActive(c.Status).Oscred())
		o.opt("create_time", c.CreateTime)
		o.str("description", c.Description)
		return o.close()
	default: // list, get
		o.str("access", c.Access)
		o.opt("user_id", c.UserID)
		o.opt("status", c.Status.Oscred())
		o.opt("create_time", c.CreateTime)
		if v.Op == OpGet {
			o.opt("last_use_time", c.LastUseTime)
		}
	}
	if c.HasDescription {
		o.str("description", c.Description)
	}
	return o.close()
}

func orActive(s Status) Status {
	if s == StatusUnset {
		return StatusActive
	}
	return s
}

// appendBlob writes the blob in the given form. The string form is the object
// form JSON-encoded, built in a stack buffer first.
func appendBlob(dst []byte, form BlobForm, c Cred, secrets bool) []byte {
	if form != BlobString {
		return appendBlobObject(dst, c, secrets)
	}
	var scratch [512]byte
	return appendString(dst, appendBlobObject(scratch[:0], c, secrets))
}

func appendBlobObject(dst []byte, c Cred, secrets bool) []byte {
	o := openObj(dst)
	o.opt("access", c.Access)
	if secrets {
		o.opt("secret", c.Secret)
	}
	o.opt("status", c.Status.EC2())
	if c.HasDescription {
		o.str("description", c.Description)
	}
	return o.close()
}

const (
	akAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	skAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// NewKeyPair makes an access key (20 of A-Z0-9) and secret (40 of A-Za-z0-9) with
// crypto/rand, for upstreams that need the client to bring them (Keystone).
func NewKeyPair() (ak, sk string) {
	return randomString(akAlphabet, 20), randomString(skAlphabet, 40)
}

// randomString draws unbiased characters by rejection sampling.
func randomString(alphabet string, n int) string {
	out := make([]byte, 0, n)
	limit := 256 - 256%len(alphabet)
	var buf [64]byte
	for len(out) < n {
		if _, err := rand.Read(buf[:]); err != nil {
			panic("crypto/rand failed: " + err.Error()) // the OS has no randomness; nothing safe to do
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}
