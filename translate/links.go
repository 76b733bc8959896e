package translate

import (
	"slices"
	"strings"

	"github.com/tidwall/gjson"
)

// RewriteLinks copies a Keystone answer body into dst with its links pointing at
// base (the bridge's public URL) instead of the upstream's own address: the
// "self", "next" and "previous" strings of the "links" objects of the answer,
// of its "credential" and of each of its "credentials". A link keeps its path
// from "/v3/" on (and its query); one without "/v3/" becomes base's credentials
// collection. Everything else is copied byte for byte.
func RewriteLinks(dst, body []byte, base string) []byte {
	if !gjson.ValidBytes(body) {
		return append(dst, body...)
	}
	var spans []linkSpan
	root := gjson.Parse(bstr(body))
	spans = collectLinks(spans, root)
	spans = collectLinks(spans, root.Get("credential"))
	root.Get("credentials").ForEach(func(_, v gjson.Result) bool {
		spans = collectLinks(spans, v)
		return true
	})
	slices.SortFunc(spans, func(a, b linkSpan) int { return a.start - b.start })
	last := 0
	for _, sp := range spans {
		if sp.start < last || sp.end > len(body) || string(body[sp.start:sp.end]) != sp.raw {
			continue // not where gjson said: leave it be
		}
		dst = append(dst, body[last:sp.start]...)
		dst = appendString(dst, base+linkPath(sp.val))
		last = sp.end
	}
	return append(dst, body[last:]...)
}

type linkSpan struct {
	start, end int
	raw, val   string
}

func collectLinks(spans []linkSpan, obj gjson.Result) []linkSpan {
	links := obj.Get("links")
	if !links.IsObject() {
		return spans
	}
	links.ForEach(func(k, v gjson.Result) bool {
		if v.Type == gjson.String && v.Index > 0 && (k.Str == "self" || k.Str == "next" || k.Str == "previous") {
			spans = append(spans, linkSpan{start: v.Index, end: v.Index + len(v.Raw), raw: v.Raw, val: v.Str})
		}
		return true
	})
	return spans
}

// linkPath is the part of link the bridge keeps: from "/v3/" on.
func linkPath(link string) string {
	if i := strings.Index(link, "/v3/"); i >= 0 {
		return link[i:]
	}
	return "/v3/credentials"
}
