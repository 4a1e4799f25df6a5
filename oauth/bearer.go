package oauth

import (
	"errors"
	"net/http"
	"strings"
)

// BearerToken is the token of an "Authorization: Bearer <token>" header
// (RFC 6750 section 2.1; the only method mcp_auth supports, as the MCP
// specification requires: never the query string). present is false
// when there is no Authorization header at all. The header's length is
// checked first, before any other work, so an oversized one costs
// nothing but the comparison.
func BearerToken(h http.Header, maxBytes int) (token string, present bool, err error) {
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, refuse(ReasonMalformed, errors.New("more than one Authorization header"))
	}
	v := values[0]
	if len(v) > maxBytes+len("Bearer ") {
		return "", true, refuse(ReasonTooLarge, errors.New("Authorization header longer than the token bound"))
	}
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true, refuse(ReasonMalformed, errors.New("not a Bearer token"))
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || !isB64Token(tok) {
		return "", true, refuse(ReasonMalformed, errors.New("not a b64token"))
	}
	return tok, true, nil
}

// isB64Token reports whether s is RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
