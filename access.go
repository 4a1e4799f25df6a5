package mcpsse

import (
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
)

// DefaultIdentity is the placeholder that names who a request comes from:
// the user id that Caddy's authentication handlers (basic_auth,
// forward_auth with copy_headers into it, and others) set.
const DefaultIdentity = "{http.auth.user.id}"

// corsAllowHeaders are the request headers a browser client may send.
const corsAllowHeaders = "Authorization, Content-Type, Accept, Last-Event-ID, Mcp-Protocol-Version, Mcp-Session-Id"

// originDecision is what checkOrigin found.
type originDecision int

const (
	originNone      originDecision = iota // no Origin header: not a browser, or same-origin GET
	originSame                            // the page's origin is the request's own host
	originListed                          // a listed cross-origin browser client: gets CORS headers
	originForbidden                       // anything else
)

// checkOrigin applies the MCP spec's Origin validation, which guards local
// servers against DNS rebinding: a request without Origin is fine
// (non-browser clients send none), one from the site's own origin is
// fine, one from an origin in allowed_origins is fine, anything else is
// refused.
func (h *Handler) checkOrigin(r *http.Request) originDecision {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return originNone
	}
	if slices.Contains(h.AllowedOrigins, "*") || slices.Contains(h.AllowedOrigins, origin) {
		return originListed
	}
	if h.sameOrigin(origin, r) {
		return originSame
	}
	return originForbidden
}

// sameOrigin reports whether origin is the site the request reached: the
// scheme it came in on, the host and port it was sent to, and a host that
// a rebinding attacker cannot pick. In a rebinding attack the browser
// sends the attacker's name as both Host and Origin, so their agreeing
// proves nothing; what does is a host the site is configured for (its
// host matchers), a loopback name, or an IP literal, which no DNS answer
// stands behind. A catch-all site (no host matchers) thus trusts only the
// last two.
func (h *Handler) sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	scheme := requestScheme(r)
	if err != nil || u.Scheme != scheme || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return false
	}
	if !strings.EqualFold(withoutDefaultPort(u.Host, scheme), withoutDefaultPort(r.Host, scheme)) {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return h.site(r).servesHost(r)
}

// requestScheme is the scheme the client used: the connection's, or what
// a trusted proxy in front said it was.
func requestScheme(r *http.Request) string {
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if proto := r.Header.Get("X-Forwarded-Proto"); proto == "http" || proto == "https" {
			return proto
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func withoutDefaultPort(hostport, scheme string) string {
	if scheme == "https" {
		return strings.TrimSuffix(hostport, ":443")
	}
	return strings.TrimSuffix(hostport, ":80")
}

// setCORS adds the CORS headers a listed browser origin needs.
func (h *Handler) setCORS(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Add("Vary", "Origin")
	if slices.Contains(h.AllowedOrigins, "*") {
		hdr.Set("Access-Control-Allow-Origin", "*")
		return
	}
	hdr.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	hdr.Set("Access-Control-Allow-Credentials", "true")
}

// admit runs the Origin check for a request on one of the module's paths.
// It answers the request itself (a refusal, or a CORS preflight) and
// returns false when the request must go no further.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) bool {
	decision := h.checkOrigin(r)
	if decision == originForbidden {
		_ = writeError(w, http.StatusForbidden, dispatch.CodeInvalidRequest,
			"origin not allowed: "+r.Header.Get("Origin"))
		return false
	}
	if decision == originListed {
		h.setCORS(w, r)
	}
	if r.Method == http.MethodOptions {
		hdr := w.Header()
		hdr.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		hdr.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		hdr.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	return true
}

// identity is who the request comes from, as the identity placeholder
// names it; "" when no authentication handler said, or when identity
// binding is off.
func (h *Handler) identity(r *http.Request) string {
	if h.Identity == "off" {
		return ""
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	return repl.ReplaceAll(h.Identity, "")
}
