package mcpauth_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestAuthTokenInQueryRefused: the MCP specification forbids tokens in
// the query string, and the metadata says "header" only. The attack (or
// the careless client) sends a token there too, beside a good header:
// the request went on with the token in its URL, to the upstream and
// its logs. It is refused 400 invalid_request (RFC 6750 section 3.1: more
// than one method), and never reaches the upstream; alone, likewise.
func TestAuthTokenInQueryRefused(t *testing.T) {
	e := start(t, "")
	tok := e.token("mcp:tools")
	r := e.do(http.MethodGet, "/headers?access_token="+tok, bearer(tok), "", false)
	if r.status != http.StatusBadRequest || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_request"`) {
		t.Errorf("a token in the query beside the header: %d %q, want 400 invalid_request", r.status, r.header.Get("WWW-Authenticate"))
	}
	if r := e.do(http.MethodGet, "/headers?access_token="+tok, nil, "", false); r.status != http.StatusBadRequest {
		t.Errorf("a token in the query alone: %d, want 400", r.status)
	}
}
