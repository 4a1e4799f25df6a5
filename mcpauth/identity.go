package mcpauth

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

// Bounds on the claims made placeholders: they come from a token the
// authorization server signed, but a generous one should not make every
// request carry a large replacer.
const (
	maxClaimPlaceholders = 64
	maxClaimName         = 64
	maxClaimValue        = 4 << 10
)

// setIdentity sets the placeholders Caddy's authentication handlers set
// (caddyauth): {http.auth.user.id} is the token's subject, which binds
// mcp_sse sessions and mcp_stdio processes to it; each claim whose value
// is a string, a number, a boolean or a list of those is
// {http.auth.user.<claim>} (a list comma-separated; scope stays as the
// token wrote it, space-separated).
func setIdentity(r *http.Request, tok *oauth.Token) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	repl.Set("http.auth.user.id", tok.Subject)
	n := 0
	for name, v := range tok.Claims {
		if n == maxClaimPlaceholders {
			break
		}
		if name == "id" || !validClaimName(name) {
			continue
		}
		s, ok := claimString(v)
		if !ok || len(s) > maxClaimValue {
			continue
		}
		repl.Set("http.auth.user."+name, s)
		n++
	}
}

func claimString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		if v {
			return "true", true
		}
		return "false", true
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := claimString(e)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	}
	return "", false
}

// validClaimName keeps placeholder names to what a Caddyfile can name.
func validClaimName(name string) bool {
	if name == "" || len(name) > maxClaimName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}
