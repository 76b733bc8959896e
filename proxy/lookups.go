package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/credbridge/credbridge/translate"
	"github.com/credbridge/credbridge/upstream"
	"github.com/tidwall/gjson"
)

// Identity look-ups (identity.lookups: forward).
//
// python-openstackclient resolves the user and project named in `openstack
// credential create|set|list` with GET /v3/users[/{id}] and
// /v3/projects[/{id}] on the endpoint that serves /v3/credentials. Where the
// bridge stands in for that endpoint, it passes these reads to the identity
// service with the caller's own token (never the bridge's service token), so
// the identity service's policy decides what the caller sees; the bridge
// checks the input, the token, and that the answer is JSON, and changes
// nothing else.

// lookupFilters are the list filters a look-up may carry.
var lookupFilters = map[string]bool{"name": true, "domain_id": true}

// maxLookupID bounds a user or project id (Keystone's are 32 hex, Huawei's 32
// characters; 64 leaves room, and ids are not free text).
const maxLookupID = 64

func (s *Server) serveLookup(k *call, kind string, byID bool) *translate.Error {
	path := "/v3/" + kind
	if byID {
		if strings.IndexByte(k.id, '/') >= 0 { // echo's last parameter spans segments
			return translate.ErrNotFound("no such resource: " + k.c.Request().URL.Path)
		}
		if !validLookupID(k.id) {
			return translate.ErrBadParam(kind[:len(kind)-1] + " id must be 1-64 characters of A-Za-z0-9._-")
		}
		path += "/" + k.id
	}
	query, err := lookupQuery(k.c.Request().URL.RawQuery, byID)
	if err != nil {
		return err
	}
	if err := k.readToken(); err != nil {
		return err
	}
	// The token is checked here too: an invalid one never reaches the
	// identity service through the bridge, and the answer is the bridge's 401.
	if err := s.authenticate(k); err != nil {
		return err
	}
	k.endPolicy(true, "identity look-up")
	// The caller's own token: the identity service's policy decides what it sees.
	a, terr := s.sendTo(k, s.idn, k.token, http.MethodGet, path, query, nil)
	if terr != nil {
		return terr
	}
	switch {
	case len(a.Body) > 0 && gjson.ValidBytes(a.Body) && (a.Status == http.StatusOK || a.Status >= 400):
		return s.reply(k, a.Status, a.Body, upstream.Answer{})
	case a.Status >= 400:
		return translate.ParseUpstreamError(translate.SideKeystone, k.op, a.Status, a.Body)
	}
	return translate.ErrBadGateway("identity service answered with something that is not JSON")
}

func validLookupID(id string) bool {
	if id == "" || len(id) > maxLookupID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return id != "." && id != ".."
}

// lookupQuery checks a look-up's query and re-encodes it: a list takes name
// and domain_id, each once, as printable text; a read by id takes none.
func lookupQuery(raw string, byID bool) (string, *translate.Error) {
	if raw == "" {
		return "", nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "", translate.ErrBadParam("query string is malformed")
	}
	if byID && len(q) > 0 {
		return "", translate.ErrBadParam("a read by id takes no query parameters")
	}
	for name, vs := range q {
		if !lookupFilters[name] {
			// Refused, not dropped: keystoneclient's find() trusts the filter,
			// and a wider list would read as "more than one match".
			return "", translate.ErrBadParam("query parameters are name and domain_id only")
		}
		if len(vs) != 1 || !translate.ValidQueryValue(vs[0]) {
			return "", translate.ErrBadParam("query parameter " + name + " must be given once, 1-255 printable characters")
		}
	}
	return q.Encode(), nil
}
