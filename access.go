package mcpsse

import (
	"net/http"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/internal/access"
)

// DefaultIdentity is the placeholder that names who a request comes from:
// the user id that Caddy's authentication handlers (basic_auth,
// forward_auth with copy_headers into it, and others) set.
const DefaultIdentity = access.DefaultIdentity

// corsAllowHeaders are the request headers a browser client may send.
const corsAllowHeaders = "Authorization, Content-Type, Accept, Last-Event-ID, Mcp-Protocol-Version, Mcp-Session-Id"

// site is what the routes of the server handling r say of the handler:
// its site's host names, and the scope its sessions are kept under.
func (h *Handler) site(r *http.Request) *access.Site {
	return h.sites.Of(r, h)
}

// admit runs the Origin check (see access.CheckOrigin) for a request on
// one of the module's paths. It answers the request itself (a refusal, or
// a CORS preflight) and returns false when the request must go no
// further.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) bool {
	decision := access.CheckOrigin(r, h.AllowedOrigins, h.site(r))
	if decision == access.OriginForbidden {
		_ = writeError(w, http.StatusForbidden, dispatch.CodeInvalidRequest,
			"origin not allowed: "+r.Header.Get("Origin"))
		return false
	}
	if decision == access.OriginListed {
		access.SetCORS(w, r, h.AllowedOrigins)
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

// identity is who the request comes from (see access.Identity).
func (h *Handler) identity(r *http.Request) string {
	return access.Identity(r, h.Identity)
}
