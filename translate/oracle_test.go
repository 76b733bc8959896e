package translate

// The parsers ParseRequest and ParseAnswer replaced: gjson walks after the
// strict scan (an answer's credential read by ReadCred, the gjson walk list
// answers still use). Kept as the oracle the one-walk parsers are fuzzed
// against (FuzzParseRequestAsBefore, FuzzParseAnswerAsBefore): the same Cred
// and the same refusal for every body.

import (
	"github.com/tidwall/gjson"
)

// gjsonParseRequest checks a client's request body for op in side s's dialect and
// returns it in neutral form. Every rule of dialects.md "Input checks" that can be
// judged from the body alone is applied here; a non-nil error is the 400 to answer.
func gjsonParseRequest(s Side, op Op, body []byte) (Cred, *Error) {
	var c Cred
	cr, err := gjsonParseRoot(body)
	if err != nil {
		return c, err
	}
	if !cr.Exists() {
		return c, ErrBadBody(`request body must have a "credential" object`)
	}
	if !cr.IsObject() {
		return c, ErrBadParam(`"credential" must be an object`)
	}
	if s.Dialect == Oscred {
		err = gjsonParseOscredReq(&c, op, cr)
	} else {
		err = gjsonParseEC2Req(&c, cr)
	}
	return c, err
}

// gjsonParseRoot checks the body and returns its "credential" member (not Exists
// when there is none). One walk of the top level finds it and refuses a
// look-alike name; the scan has already refused a duplicate.
func gjsonParseRoot(body []byte) (gjson.Result, *Error) {
	if len(body) == 0 {
		return gjson.Result{}, ErrBadBody("request body is empty")
	}
	if err := ScanBody(body); err != nil {
		return gjson.Result{}, err
	}
	var cr gjson.Result
	var err *Error
	gjson.Parse(bstr(body)).ForEach(func(k, v gjson.Result) bool {
		if k.Str == "credential" {
			cr = v
		} else {
			err = refuseLookalike(k.Str, "credential")
		}
		return err == nil
	})
	return cr, err
}

func gjsonParseOscredReq(c *Cred, op Op, cr gjson.Result) *Error {
	var err *Error
	cr.ForEach(func(k, v gjson.Result) bool {
		err = oscredMember(c, op, k.Str, v)
		return err == nil
	})
	if err != nil {
		return err
	}
	return oscredComplete(c, op)
}

func gjsonParseEC2Req(c *Cred, cr gjson.Result) *Error {
	var err *Error
	cr.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "blob" {
			err = gjsonParseReqBlob(c, v)
		} else {
			err = ec2Member(c, k.Str, v)
		}
		return err == nil
	})
	return err
}

func gjsonParseReqBlob(c *Cred, v gjson.Result) *Error {
	var b gjson.Result
	switch {
	case v.IsObject():
		c.Blob, b = BlobObject, v
	case v.Type == gjson.String:
		if err := scanDoc(v.Str, `"blob" string`, nil, roleNone); err != nil {
			return ErrBadParam(err.Message)
		}
		b = gjson.Parse(v.Str)
		c.Blob = BlobString
	default:
		return ErrBadParam(`"blob" must be an object or a JSON-encoded string`)
	}
	var err *Error
	b.ForEach(func(k, v gjson.Result) bool {
		err = blobMember(c, k.Str, v)
		return err == nil
	})
	return err
}

// gjsonParseAnswer reads a single-credential answer (`{"credential":{...}}`) from an
// upstream of side s. It is tolerant of extra and mistyped fields (they are left
// out), but an answer without a credential object is garbage: ok is false.
func gjsonParseAnswer(s Side, body []byte) (c Cred, ok bool) {
	if !gjson.ValidBytes(body) {
		return c, false
	}
	cr := gjson.Get(bstr(body), "credential")
	if !cr.IsObject() {
		return c, false
	}
	return ReadCred(s, cr), true
}
