package oauth

import (
	"net/url"
	"strings"
)

// CanonicalResource is the form of a resource URI that audiences are
// compared in (RFC 8707, RFC 3986 section 6.2.2-6.2.3): scheme and host
// in lower case, no default port, no fragment, and no trailing slash (so
// https://mcp.example.com and https://mcp.example.com/, which clients
// that build the URI with a URL class send, are the same resource).
// ok is false for a URI that cannot be a resource (not absolute, or with
// a fragment).
func CanonicalResource(uri string) (canonical string, ok bool) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Fragment != "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	if (scheme == "https" && strings.HasSuffix(host, ":443")) || (scheme == "http" && strings.HasSuffix(host, ":80")) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	out := scheme + "://" + host + strings.TrimSuffix(u.EscapedPath(), "/")
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out, true
}

// AudienceNames reports whether one of aud names resource (both compared
// in canonical form).
func AudienceNames(aud []string, resource string) bool {
	want, ok := CanonicalResource(resource)
	if !ok {
		return false
	}
	for _, a := range aud {
		if got, ok := CanonicalResource(a); ok && got == want {
			return true
		}
	}
	return false
}
