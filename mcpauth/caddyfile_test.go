package mcpauth

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

const as = "authorization_server https://auth.example.com\n"

func TestAuthUnmarshalCaddyfile(t *testing.T) {
	base := Handler{AuthorizationServer: "https://auth.example.com"}
	with := func(f func(*Handler)) Handler { h := base; f(&h); return h }
	for _, tc := range []struct {
		name, input string
		want        Handler
	}{
		{"minimal", "mcp_auth {\n" + as + "}", base},
		{"scopes", "mcp_auth {\n" + as + " scopes mcp:tools mcp:read\n}", with(func(h *Handler) { h.Scopes = []string{"mcp:tools", "mcp:read"} })},
		{"resource", "mcp_auth {\n" + as + " resource https://mcp.example.com/mcp\n}", with(func(h *Handler) { h.Resource = "https://mcp.example.com/mcp" })},
		{"resource_path and name", "mcp_auth {\n" + as + " resource_path /mcp\n resource_name \"My tools\"\n}",
			with(func(h *Handler) { h.ResourcePath, h.ResourceName = "/mcp", "My tools" })},
		{"algorithms", "mcp_auth {\n" + as + " algorithms ES256 EdDSA\n}", with(func(h *Handler) { h.Algorithms = []string{"ES256", "EdDSA"} })},
		{"times and sizes", "mcp_auth {\n" + as + " leeway 5s\n timeout 2s\n keys_min_refresh 1m\n keys_max_age 1h\n max_token_size 4KiB\n max_document_size 1MiB\n}",
			with(func(h *Handler) {
				h.Leeway, h.Timeout = caddy.Duration(5*time.Second), caddy.Duration(2*time.Second)
				h.KeysMinRefresh, h.KeysMaxAge = caddy.Duration(time.Minute), caddy.Duration(time.Hour)
				h.MaxTokenSize, h.MaxDocumentSize = 4<<10, 1<<20
			})},
		{"introspection", "mcp_auth {\n" + as + " introspection rs {env.SECRET}\n introspection_cache off\n}",
			with(func(h *Handler) {
				h.Introspection = &Introspection{ClientID: "rs", ClientSecret: "{env.SECRET}", Cache: -1}
			})},
		{"forward_token", "mcp_auth {\n" + as + " forward_token X-Token\n}", with(func(h *Handler) { h.ForwardTokenHeader = "X-Token" })},
		{"token_cache", "mcp_auth {\n" + as + " token_cache 5m\n}", with(func(h *Handler) { h.TokenCache = caddy.Duration(5 * time.Minute) })},
		{"token_cache off", "mcp_auth {\n" + as + " token_cache off\n}", with(func(h *Handler) { h.TokenCache = -1 })},
		{"token_exchange", "mcp_auth {\n" + as + " token_exchange {\n  client_id rs\n  client_secret {env.SECRET}\n" +
			"  resource https://api.example.com/v1\n  audience api\n  scopes read write\n  header X-Api-Token\n }\n scopes mcp:tools\n}",
			with(func(h *Handler) {
				h.TokenExchange = &TokenExchange{ClientID: "rs", ClientSecret: "{env.SECRET}", Resource: "https://api.example.com/v1",
					Audience: "api", Scopes: []string{"read", "write"}, Header: "X-Api-Token"}
				h.Scopes = []string{"mcp:tools"}
			})},
		{"token_exchange with an audience only", "mcp_auth {\n" + as + " token_exchange {\n  client_id rs\n  client_secret s\n  audience api\n }\n}",
			with(func(h *Handler) { h.TokenExchange = &TokenExchange{ClientID: "rs", ClientSecret: "s", Audience: "api"} })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Handler
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestAuthUnmarshalCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ name, input, wantErr string }{
		{"no server", "mcp_auth {\n scopes a\n}", "authorization_server is required"},
		{"argument", "mcp_auth x {\n" + as + "}", "wrong argument count"},
		{"server not a URL", "mcp_auth {\n authorization_server auth.example.com\n}", "is not an issuer identifier (https://host[/path]), at Testfile:2"},
		{"unknown", "mcp_auth {\n" + as + " scope a\n}", "unrecognized mcp_auth subdirective 'scope', at Testfile:3"},
		{"alg none", "mcp_auth {\n" + as + " algorithms RS256 none\n}", `"none" is not an asymmetric JWS algorithm`},
		{"alg HS256", "mcp_auth {\n" + as + " algorithms HS256\n}", `"HS256" is not an asymmetric`},
		{"resource relative", "mcp_auth {\n" + as + " resource /mcp\n}", "is not an absolute URI"},
		{"resource_path", "mcp_auth {\n" + as + " resource_path mcp\n}", "must start with '/'"},
		{"size", "mcp_auth {\n" + as + " max_token_size lots\n}", "invalid size"},
		{"introspection args", "mcp_auth {\n" + as + " introspection only-id\n}", "introspection takes <client_id> <client_secret>"},
		{"forward_token", "mcp_auth {\n" + as + " forward_token \"X Token\"\n}", "is not a header name"},
		{"empty scopes", "mcp_auth {\n" + as + " scopes\n}", "wrong argument count"},
		{"token_exchange without client_id", "mcp_auth {\n" + as + " token_exchange {\n  client_secret s\n  resource https://api.example.com\n }\n}",
			"token_exchange needs a client_id and a client_secret, at Testfile:3"},
		{"token_exchange without resource", "mcp_auth {\n" + as + " token_exchange {\n  client_id rs\n  client_secret s\n }\n}",
			"token_exchange needs a resource (or an audience), at Testfile:3"},
		{"token_exchange relative resource", "mcp_auth {\n" + as + " token_exchange {\n  client_id rs\n  client_secret s\n  resource /api\n }\n}",
			`token_exchange: resource "/api" is not an absolute URI without query or fragment, at Testfile:6`},
		{"token_exchange resource with a query", "mcp_auth {\n" + as + " token_exchange {\n  client_id rs\n  client_secret s\n  resource https://a.example/?x=1\n }\n}",
			"is not an absolute URI without query or fragment, at Testfile:6"},
		{"token_exchange header", "mcp_auth {\n" + as + " token_exchange {\n  client_id rs\n  client_secret s\n  audience api\n  header \"X Token\"\n }\n}",
			`header "X Token" is not a header name, at Testfile:7`},
		{"token_exchange hop-by-hop header", "mcp_auth {\n" + as + " token_exchange {\n  client_id rs\n  client_secret s\n  audience api\n  header connection\n }\n}",
			`header "connection" is handled by HTTP or the proxy itself: a token there would go nowhere; name another header, at Testfile:7`},
		{"forward_token Host", "mcp_auth {\n" + as + " forward_token Host\n}", `forward_token: "Host" is handled by HTTP or the proxy itself`},
		{"token_exchange unknown", "mcp_auth {\n" + as + " token_exchange {\n  client rs\n }\n}", "unrecognized token_exchange subdirective 'client', at Testfile:4"},
		{"token_exchange twice", "mcp_auth {\n" + as + " token_exchange {\n  client_id rs\n  client_secret s\n  audience api\n }\n token_exchange {\n }\n}",
			"token_exchange given twice, at Testfile:8"},
		{"forward_token and token_exchange", "mcp_auth {\n" + as + " token_exchange {\n  client_id rs\n  client_secret s\n  audience api\n }\n forward_token X-Token\n}",
			"forward_token and token_exchange exclude each other: the client's token goes on, or one exchanged for it, not both, at Testfile:8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestAuthValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       Handler
		wantErr string
	}{
		{"no server", Handler{}, "authorization_server is required"},
		{"both resource forms", Handler{AuthorizationServer: "https://a", Resource: "https://m/mcp", ResourcePath: "/mcp"}, "exclude each other"},
		{"resource with query", Handler{AuthorizationServer: "https://a", Resource: "https://m/mcp?x=1"}, "without query"},
		{"introspection without secret", Handler{AuthorizationServer: "https://a", Introspection: &Introspection{ClientID: "x"}}, "client_secret"},
		{"fine", Handler{AuthorizationServer: "https://a", Resource: "https://m/mcp"}, ""},
		{"forward_token and token_exchange", Handler{AuthorizationServer: "https://a", ForwardTokenHeader: "X-T",
			TokenExchange: &TokenExchange{ClientID: "c", ClientSecret: "s", Audience: "api"}}, "exclude each other"},
		{"token_exchange without secret", Handler{AuthorizationServer: "https://a", TokenExchange: &TokenExchange{ClientID: "c", Audience: "api"}}, "client_secret"},
		{"token_exchange without target", Handler{AuthorizationServer: "https://a", TokenExchange: &TokenExchange{ClientID: "c", ClientSecret: "s"}}, "needs a resource"},
		{"token_exchange bad resource", Handler{AuthorizationServer: "https://a", TokenExchange: &TokenExchange{ClientID: "c", ClientSecret: "s", Resource: "api"}}, "not an absolute URI"},
		{"token_exchange framing header", Handler{AuthorizationServer: "https://a", TokenExchange: &TokenExchange{ClientID: "c", ClientSecret: "s", Audience: "api", Header: "Transfer-Encoding"}}, "handled by HTTP"},
		{"forward_token Cookie", Handler{AuthorizationServer: "https://a", ForwardTokenHeader: "cookie"}, "handled by HTTP"},
		{"token_exchange bad header", Handler{AuthorizationServer: "https://a", TokenExchange: &TokenExchange{ClientID: "c", ClientSecret: "s", Audience: "api", Header: "a:b"}}, "not a header name"},
		{"token_exchange resource with an empty query", Handler{AuthorizationServer: "https://a", TokenExchange: &TokenExchange{ClientID: "c", ClientSecret: "s", Resource: "https://api.example/?"}}, "without query"},
		{"token_exchange resource with an empty fragment", Handler{AuthorizationServer: "https://a", TokenExchange: &TokenExchange{ClientID: "c", ClientSecret: "s", Resource: "https://api.example/#"}}, "without query"},
		{"resource with an empty query", Handler{AuthorizationServer: "https://a", Resource: "https://m/mcp?"}, "without query"},
		{"token_exchange fine", Handler{AuthorizationServer: "https://a", TokenExchange: &TokenExchange{ClientID: "c", ClientSecret: "s", Resource: "https://api.example"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
