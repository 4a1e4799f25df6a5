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
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
