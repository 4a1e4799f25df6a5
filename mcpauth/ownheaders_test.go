package mcpauth_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestAuthPreflightCarriesNoOwnHeader: a CORS preflight goes on without
// a token, but never with a value the client put in the header mcp_auth
// fills for the upstream (the exchanged token's, forward_token's): any
// client, with no token, could otherwise reach the upstream with a
// "token" of its choice (its own, here) where the upstream trusts
// mcp_auth's.
func TestAuthPreflightCarriesNoOwnHeader(t *testing.T) {
	for _, tc := range []struct{ name, settings, header string }{
		{"token_exchange header", strings.Replace(exchangeSettings(t, downstream), "\n}", "\n header X-Downstream-Token\n}", 1), "X-Downstream-Token"},
		{"forward_token", "forward_token X-Client-Token", "X-Client-Token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, tc.settings)
			tok := e.token("mcp:tools")
			r := e.do(http.MethodOptions, "/headers", http.Header{
				"Origin":                        {"http://elsewhere.example"},
				"Access-Control-Request-Method": {"POST"},
				tc.header:                       {"Bearer " + tok},
			}, "", false)
			headers := e.upstream.Headers()
			if len(headers) != 1 {
				t.Fatalf("the preflight (%d) made %d upstream requests, want 1", r.status, len(headers))
			}
			for name, values := range headers[0] {
				for _, v := range values {
					if strings.Contains(v, tok) {
						t.Errorf("the preflight reached the upstream with the client's value of %s in %s", tc.header, name)
					}
				}
			}
		})
	}
}
