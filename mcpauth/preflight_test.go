package mcpauth_test

import (
	"net/http"
	"testing"
)

// TestAuthPreflightCarriesNothing: a CORS preflight goes on without a
// token, so that the handlers behind can answer it; the attack is an
// OPTIONS request dressed as one (Origin, Access-Control-Request-Method)
// that carries a body to the upstream without a token. A real preflight
// has no body and no credentials (Fetch): one with a body is an
// ordinary request, refused 401, and one with a token is an ordinary
// request too, whose token does not go on (the harness fails the test if
// the upstream sees it). A real one still reaches the upstream.
func TestAuthPreflightCarriesNothing(t *testing.T) {
	e := start(t, "")
	preflight := http.Header{"Origin": {"http://evil.example"}, "Access-Control-Request-Method": {"POST"}}
	if r := e.do(http.MethodOptions, "/headers", preflight, `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, false); r.status != http.StatusUnauthorized {
		t.Errorf("an OPTIONS with a body, dressed as a preflight: %d %s, want 401", r.status, r.body)
	}
	withToken := bearer(e.token("mcp:tools"))
	for k, v := range preflight {
		withToken[k] = v
	}
	if r := e.do(http.MethodOptions, "/headers", withToken, "", false); r.status != http.StatusOK {
		t.Errorf("an OPTIONS with a token, dressed as a preflight: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodOptions, "/headers", preflight, "", false); r.status != http.StatusOK {
		t.Errorf("a preflight: %d %s, want the upstream's 200", r.status, r.body)
	}
}
