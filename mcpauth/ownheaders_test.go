package mcpauth_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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

// TestAuthTrailersCarryNoToken: a client that sends its token again in
// the trailers of a chunked body, in Authorization or the token
// exchange's header, does not get it to the upstream there: net/http and
// reverse_proxy pass request trailers on, mcp_auth drops its own headers
// from them. Other trailers still go on.
func TestAuthTrailersCarryNoToken(t *testing.T) {
	for _, tc := range []struct {
		name, settings string
		own            []string // mcp_auth's headers
	}{
		{"token_exchange", strings.Replace(exchangeSettings(t, downstream), "\n}", "\n header X-Downstream-Token\n}", 1), []string{"Authorization", "X-Downstream-Token"}},
		{"plain", "", []string{"Authorization"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, tc.settings)
			e.upstream.Allow(func(v string) bool { return e.exchangedClaims(v) != nil })
			tok := e.token("mcp:tools")
			req, err := http.NewRequest(http.MethodPost, e.base+"/headers", io.NopCloser(strings.NewReader("{}")))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = -1 // chunked: trailers follow the body
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Trailer = http.Header{
				"Authorization":      {"Bearer " + tok},
				"X-Downstream-Token": {"Bearer " + tok},
				"X-Other":            {"kept"},
			}
			client := &http.Client{Timeout: 15 * time.Second}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			client.CloseIdleConnections()
			trailers := e.upstream.Trailers()
			if resp.StatusCode != http.StatusOK || len(trailers) != 1 {
				t.Fatalf("%d, %d upstream requests; want 200 and 1", resp.StatusCode, len(trailers))
			}
			if trailers[0].Get("X-Other") != "kept" {
				t.Errorf("the upstream got trailers %v, want X-Other among them", trailers[0])
			}
			for _, name := range tc.own {
				if strings.Contains(trailers[0].Get(name), tok) {
					t.Errorf("the client's token reached the upstream in the trailer %s", name)
				}
			}
		})
	}
}
