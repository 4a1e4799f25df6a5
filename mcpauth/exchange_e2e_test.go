package mcpauth_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mcpsse/caddy-mcp-sse/internal/authservertest"
	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

// downstream is the resource the upstream is; the authorization server
// lets the exchange client get tokens for it.
const downstream = authservertest.ExchangeResourcePrefix + "api"

// exchangeSettings is mcp_auth's token_exchange for resource, its secret
// from the environment as an operator would keep it.
func exchangeSettings(t *testing.T, resource string) string {
	t.Setenv("MCP_TEST_EXCHANGE_SECRET", authservertest.ExchangeSecret)
	return "token_exchange {\n client_id " + authservertest.ExchangeClient + "\n client_secret {env.MCP_TEST_EXCHANGE_SECRET}\n resource " + resource + "\n}"
}

// exchangedClaims are the claims of an Authorization value that is a
// token the authorization server signed for the downstream resource, or
// nil.
func (e *env) exchangedClaims(authorization string) *jwt.Claims {
	raw, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return nil
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil
	}
	var c jwt.Claims
	key := e.as.SigningKey()
	if err := tok.Claims(key.Public().Key, &c); err != nil || c.Issuer != e.as.Issuer() || !c.Audience.Contains(downstream) {
		return nil
	}
	return &c
}

// checkUpstreamHeaders: every request that reached the upstreams carried
// an exchanged token of sub in Authorization, and no header carried a
// JWT anywhere else (the client's token among them) nor the client's
// token (when known) at all.
func (e *env) checkUpstreamHeaders(t *testing.T, headers []http.Header, sub, clientToken string) {
	t.Helper()
	for i, h := range headers {
		if c := e.exchangedClaims(h.Get("Authorization")); c == nil || c.Subject != sub {
			t.Errorf("request %d reached the upstream with Authorization %.60q…, want an exchanged token of %s", i, h.Get("Authorization"), sub)
		}
		for name, values := range h {
			for _, v := range values {
				if clientToken != "" && strings.Contains(v, clientToken) {
					t.Errorf("request %d: the client's token reached the upstream in %s", i, name)
				}
				if name != "Authorization" && strings.Contains(v, "eyJ") {
					t.Errorf("request %d: a JWT reached the upstream in %s: %.60q…", i, name, v)
				}
			}
		}
	}
}

// TestAuthExchange: with token_exchange, the upstreams behind mcp_sse
// (reverse_proxy to a recording upstream, and the real clients' sessions
// through it) see a token the authorization server issued for the
// downstream resource, with the client's sub, in Authorization, and
// never the client's own token; two calls with one client token make one
// exchange.
func TestAuthExchange(t *testing.T) {
	e := start(t, exchangeSettings(t, downstream))
	e.upstream.Allow(func(v string) bool { return e.exchangedClaims(v) != nil })
	tok := e.token("mcp:tools")
	for i := range 2 {
		r := e.do(http.MethodGet, "/headers", bearer(tok), "", false)
		if r.status != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, r.status, r.body)
		}
		var seen http.Header
		_ = json.Unmarshal(r.body, &seen)
		c := e.exchangedClaims(seen.Get("Authorization"))
		if c == nil || c.Subject != authservertest.Client || c.Expiry == nil || c.Expiry.Time().Before(time.Now()) {
			t.Errorf("call %d: the upstream got Authorization %.60q…, claims %+v; want a live token for %s with sub %s", i, seen.Get("Authorization"), c, downstream, authservertest.Client)
		}
		if strings.Contains(string(r.body), tok) {
			t.Errorf("call %d: the client's token reached the upstream: %s", i, r.body)
		}
		if seen.Get("X-Auth-User") != authservertest.Client {
			t.Errorf("call %d: identity %q", i, seen.Get("X-Auth-User"))
		}
	}
	if st := e.as.Stats(); st.Exchange != 1 || st.Exchanged != 1 {
		t.Errorf("two calls with one client token: %d exchange requests, %d tokens issued; want 1 and 1", st.Exchange, st.Exchanged)
	}
	e.checkUpstreamHeaders(t, e.upstream.Headers(), authservertest.Client, tok)

	// Real clients, each with a token of its own, through mcp_sse over
	// both transports to the Streamable HTTP upstream.
	for _, tc := range []struct{ path, kind string }{{"/sse", "sse"}, {"/mcp", "streamable"}} {
		before := len(e.upstream.Headers())
		got, err := e.tsClient(e.base+tc.path, tc.kind, "hello "+tc.path)
		if err != nil {
			t.Fatalf("node client over %s: %v", tc.kind, err)
		}
		if got["text"] != "hello "+tc.path {
			t.Errorf("echo over %s: %v", tc.kind, got)
		}
		headers := e.upstream.Headers()[before:]
		if len(headers) == 0 {
			t.Fatalf("nothing reached the upstream over %s", tc.kind)
		}
		e.checkUpstreamHeaders(t, headers, authservertest.Client, "")
	}
	if m := e.metrics(); !strings.Contains(m, `caddy_mcp_auth_token_exchanges_total{result="exchanged"}`) ||
		!strings.Contains(m, `caddy_mcp_auth_token_exchanges_total{result="cached"}`) {
		t.Errorf("metrics lack the exchanges by result")
	}
}

// TestAuthExchangeIntrospected: an opaque token accepted by introspection
// is exchanged likewise.
func TestAuthExchangeIntrospected(t *testing.T) {
	t.Setenv("MCP_TEST_INTROSPECTION_SECRET", authservertest.IntrospectSecret)
	e := start(t, "introspection "+authservertest.IntrospectClient+" {env.MCP_TEST_INTROSPECTION_SECRET}\n"+exchangeSettings(t, downstream))
	e.upstream.Allow(func(v string) bool { return e.exchangedClaims(v) != nil })
	opaque := e.as.Token(authservertest.OpaqueClient, e.resource()+"/", "mcp:tools")
	if r := e.do(http.MethodGet, "/headers", bearer(opaque), "", false); r.status != http.StatusOK {
		t.Fatalf("opaque token: %d %s", r.status, r.body)
	}
	e.checkUpstreamHeaders(t, e.upstream.Headers(), authservertest.OpaqueClient, opaque)
}

// TestAuthExchangeRefused: an exchange the authorization server refuses
// is 403, counted, and nothing reaches the upstream: a resource the
// exchange client may not get tokens for (invalid_target), or a client
// token for a resource it may not act for (invalid_grant).
func TestAuthExchangeRefused(t *testing.T) {
	for _, tc := range []struct {
		name, resource, target string // resource: mcp_auth's fixed one, or none
	}{
		{"target not allowed", "", "https://elsewhere.example/api"},
		{"subject not allowed", "https://mcp.example.com", downstream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			settings := exchangeSettings(t, tc.target)
			if tc.resource != "" {
				settings = "resource " + tc.resource + "\n" + settings
			}
			e := start(t, settings)
			before := e.refusedCount(oauth.ReasonExchangeRefused)
			resource := tc.resource
			if resource == "" {
				resource = e.resource()
			}
			tok := e.as.Token(authservertest.Client, resource+"/", "mcp:tools")
			r := e.do(http.MethodGet, "/headers", bearer(tok), "", false)
			if r.status != http.StatusForbidden {
				t.Fatalf("refused exchange: %d %s, want 403", r.status, r.body)
			}
			if n := len(e.upstream.Headers()); n != 0 {
				t.Errorf("%d requests reached the upstream after a refused exchange", n)
			}
			if st := e.as.Stats(); st.Exchange != 1 || st.Exchanged != 0 {
				t.Errorf("stats %+v, want one exchange request and no token issued", st)
			}
			if got := e.refusedCount(oauth.ReasonExchangeRefused) - before; got != 1 {
				t.Errorf("refusals counted as exchange_refused: %v, want 1", got)
			}
		})
	}
}

// TestAuthExchangeServerDown: with the authorization server down, a
// token whose exchanged token is cached still goes on; a token that is
// verified with the cached keys but has no exchanged token yet is 503
// with Retry-After, and nothing reaches the upstream.
func TestAuthExchangeServerDown(t *testing.T) {
	e := start(t, "timeout 2s\n"+exchangeSettings(t, downstream))
	e.upstream.Allow(func(v string) bool { return e.exchangedClaims(v) != nil })
	cached, fresh := e.token("mcp:tools"), e.token("mcp:tools")
	if r := e.do(http.MethodGet, "/headers", bearer(cached), "", false); r.status != http.StatusOK {
		t.Fatalf("first call: %d %s", r.status, r.body)
	}
	e.as.Stop()
	if r := e.do(http.MethodGet, "/headers", bearer(cached), "", false); r.status != http.StatusOK {
		t.Errorf("a token exchanged before, server down: %d %s, want 200 from the cache", r.status, r.body)
	}
	reached := len(e.upstream.Headers())
	before := e.refusedCount(oauth.ReasonExchangeUnavailable)
	r := e.do(http.MethodGet, "/headers", bearer(fresh), "", false)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("a new token, server down: %d %v, want 503 with Retry-After", r.status, r.header)
	}
	if n := len(e.upstream.Headers()) - reached; n != 0 {
		t.Errorf("%d requests reached the upstream when the exchange could not be made", n)
	}
	if got := e.refusedCount(oauth.ReasonExchangeUnavailable) - before; got != 1 {
		t.Errorf("refusals counted as exchange_unavailable: %v, want 1", got)
	}
	e.checkUpstreamHeaders(t, e.upstream.Headers(), authservertest.Client, fresh)
}

// TestAuthExchangeHeader: header names where the exchanged token goes;
// the client's Authorization is removed all the same.
func TestAuthExchangeHeader(t *testing.T) {
	e := start(t, strings.Replace(exchangeSettings(t, downstream), "\n}", "\n header X-Downstream-Token\n}", 1))
	tok := e.token("mcp:tools")
	r := e.do(http.MethodGet, "/headers", bearer(tok), "", false)
	var seen http.Header
	_ = json.Unmarshal(r.body, &seen)
	if c := e.exchangedClaims(seen.Get("X-Downstream-Token")); r.status != http.StatusOK || c == nil || seen.Get("Authorization") != "" {
		t.Errorf("header X-Downstream-Token: %d, upstream saw %v", r.status, seen)
	}
	if strings.Contains(string(r.body), tok) {
		t.Errorf("the client's token reached the upstream: %s", r.body)
	}
}

// TestAuthExchangeSubjects: requests of two clients, whose tokens share
// their header and differ in sub, each reach the upstream with a token
// exchanged for their own, again when it comes from the cache; the
// metrics count each exchange and each reuse, and every request let
// through.
func TestAuthExchangeSubjects(t *testing.T) {
	e := start(t, exchangeSettings(t, downstream))
	e.upstream.Allow(func(v string) bool { return e.exchangedClaims(v) != nil })
	now := time.Now()
	token := func(sub string) string {
		return authservertest.Sign(t, e.as.SigningKey(), map[string]any{"iss": e.as.Issuer(), "sub": sub, "aud": e.resource() + "/",
			"scope": "mcp:tools", "client_id": authservertest.Client, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	}
	clients := []struct{ sub, token string }{{"alice", token("alice")}, {"bob", token("bob")}}
	if header, _, ok := strings.Cut(clients[0].token, "."); !ok || !strings.HasPrefix(clients[1].token, header+".") {
		t.Fatal("the two client tokens do not share their header")
	}
	series := func(result string) string { return `caddy_mcp_auth_token_exchanges_total{result="` + result + `"}` }
	exchanged, cached, accepted := e.metricValue(series("exchanged")), e.metricValue(series("cached")), e.metricValue("caddy_mcp_auth_tokens_accepted_total")
	for round := range 3 {
		for _, c := range clients {
			r := e.do(http.MethodGet, "/headers", bearer(c.token), "", false)
			var seen http.Header
			_ = json.Unmarshal(r.body, &seen)
			if got := e.exchangedClaims(seen.Get("Authorization")); r.status != http.StatusOK || got == nil || got.Subject != c.sub {
				t.Errorf("round %d, %s: %d, the upstream got claims %+v; want a token exchanged for sub %s", round, c.sub, r.status, got, c.sub)
			}
		}
	}
	if st := e.as.Stats(); st.Exchanged != 2 {
		t.Errorf("%d tokens issued for two clients, three requests each; want 2", st.Exchanged)
	}
	if d := e.metricValue(series("exchanged")) - exchanged; d != 2 {
		t.Errorf("exchanges counted as exchanged: %v, want 2", d)
	}
	if d := e.metricValue(series("cached")) - cached; d != 4 {
		t.Errorf("exchanges counted as cached: %v, want 4", d)
	}
	if d := e.metricValue("caddy_mcp_auth_tokens_accepted_total") - accepted; d != 6 {
		t.Errorf("tokens counted as accepted: %v, want 6", d)
	}
}

// TestAuthExchangeAudienceScopes: token_exchange with an audience (and
// no resource) and scopes asks for those: the upstream's token is for
// that audience and has those scopes only, not all of the client's.
func TestAuthExchangeAudienceScopes(t *testing.T) {
	const audience = authservertest.ExchangeResourcePrefix + "by-audience"
	t.Setenv("MCP_TEST_EXCHANGE_SECRET", authservertest.ExchangeSecret)
	e := start(t, "token_exchange {\n client_id "+authservertest.ExchangeClient+"\n client_secret {env.MCP_TEST_EXCHANGE_SECRET}\n audience "+audience+"\n scopes mcp:tools\n}")
	tok := e.token("mcp:tools mcp:admin")
	e.upstream.Allow(func(v string) bool { return !strings.Contains(v, tok) }) // the exchanged token is checked below
	r := e.do(http.MethodGet, "/headers", bearer(tok), "", false)
	var seen http.Header
	_ = json.Unmarshal(r.body, &seen)
	raw, _ := strings.CutPrefix(seen.Get("Authorization"), "Bearer ")
	var claims struct {
		Sub   string       `json:"sub"`
		Aud   jwt.Audience `json:"aud"`
		Scope string       `json:"scope"`
	}
	parsed, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err == nil {
		key := e.as.SigningKey()
		err = parsed.Claims(key.Public().Key, &claims)
	}
	if r.status != http.StatusOK || err != nil || claims.Sub != authservertest.Client || !claims.Aud.Contains(audience) || claims.Scope != "mcp:tools" {
		t.Errorf("%d: the upstream got a token with claims %+v (%v); want aud %s, scope mcp:tools", r.status, claims, err, audience)
	}
	if strings.Contains(string(r.body), tok) {
		t.Errorf("the client's token reached the upstream: %s", r.body)
	}
}
