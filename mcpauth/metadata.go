package mcpauth

import (
	"encoding/json"
	"net/http"

	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

// serveMetadata answers GET (and HEAD) of the Protected Resource
// Metadata. It is public, and read by browser clients from other
// origins, so any origin may read it; a preflight is answered too.
func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request) error {
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		hdr.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		hdr.Set("Access-Control-Allow-Headers", "MCP-Protocol-Version")
		w.WriteHeader(http.StatusNoContent)
		return nil
	default:
		hdr.Set("Allow", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return nil
	}
	md := oauth.ResourceMetadata{
		Resource:               h.resource(r),
		AuthorizationServers:   []string{h.AuthorizationServer},
		ScopesSupported:        h.Scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           h.ResourceName,
	}
	body, err := json.Marshal(md)
	if err != nil {
		return err
	}
	hdr.Set("Content-Type", "application/json")
	// The document depends on the host and scheme the request came
	// with; a shared cache must not serve one host's to another.
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, err = w.Write(body)
	}
	return err
}
