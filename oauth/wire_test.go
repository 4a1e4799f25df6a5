package oauth_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

func TestOAuthCanonicalResource(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"HTTPS://MCP.Example.com:443/", "https://mcp.example.com"},
		{"https://mcp.example.com", "https://mcp.example.com"},
		{"http://127.0.0.1:80/mcp/", "http://127.0.0.1/mcp"},
		{"https://mcp.example.com:8443/Mcp", "https://mcp.example.com:8443/Mcp"},
		{"https://mcp.example.com/#frag", ""},
		{"/relative", ""},
		{"https://user@mcp.example.com/", ""},
	} {
		got, ok := oauth.CanonicalResource(tc.in)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("CanonicalResource(%q) = %q %v, want %q", tc.in, got, ok, tc.want)
		}
	}
}

func TestOAuthMetadataURLs(t *testing.T) {
	got, err := oauth.MetadataURLs("https://auth.example.com/tenant1")
	want := "https://auth.example.com/.well-known/oauth-authorization-server/tenant1 " +
		"https://auth.example.com/tenant1/.well-known/openid-configuration " +
		"https://auth.example.com/.well-known/openid-configuration/tenant1"
	if err != nil || strings.Join(got, " ") != want {
		t.Errorf("with a path: %q %v", got, err)
	}
	got, _ = oauth.MetadataURLs("https://auth.example.com")
	if strings.Join(got, " ") != "https://auth.example.com/.well-known/oauth-authorization-server https://auth.example.com/.well-known/openid-configuration" {
		t.Errorf("without a path: %q", got)
	}
	for _, bad := range []string{"auth.example.com", "ftp://x", "https://x/?q=1", ""} {
		if _, err := oauth.MetadataURLs(bad); err == nil {
			t.Errorf("%q taken as an issuer", bad)
		}
	}
}

func TestOAuthMetadataPath(t *testing.T) {
	for in, want := range map[string]string{
		"": "/.well-known/oauth-protected-resource", "/": "/.well-known/oauth-protected-resource",
		"/mcp": "/.well-known/oauth-protected-resource/mcp", "/a/b/": "/.well-known/oauth-protected-resource/a/b",
	} {
		if got := oauth.MetadataPath(in); got != want {
			t.Errorf("MetadataPath(%q) = %q, want %q", in, got, want)
		}
	}
	if got := oauth.MetadataURL("https://h.example/mcp"); got != "https://h.example/.well-known/oauth-protected-resource/mcp" {
		t.Errorf("MetadataURL: %q", got)
	}
}

func TestOAuthChallenge(t *testing.T) {
	got := oauth.Challenge("https://h/.well-known/oauth-protected-resource", "mcp:tools", "invalid_token", `bad "one"`)
	want := `Bearer resource_metadata="https://h/.well-known/oauth-protected-resource", scope="mcp:tools", error="invalid_token", error_description="bad \"one\""`
	if got != want {
		t.Errorf("Challenge:\n got %s\nwant %s", got, want)
	}
	if got := oauth.Challenge("u", "", "", ""); got != `Bearer resource_metadata="u"` {
		t.Errorf("bare challenge: %s", got)
	}
}

func TestOAuthBearerToken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		values  []string
		token   string
		present bool
		reason  oauth.Reason
	}{
		{"none", nil, "", false, ""},
		{"bearer", []string{"Bearer abc.def-_~+/=="}, "abc.def-_~+/==", true, ""},
		{"lower case scheme", []string{"bearer abc"}, "abc", true, ""},
		{"basic", []string{"Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, "", true, oauth.ReasonMalformed},
		{"empty", []string{"Bearer "}, "", true, oauth.ReasonMalformed},
		{"bad characters", []string{"Bearer a b"}, "", true, oauth.ReasonMalformed},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", true, oauth.ReasonMalformed},
		{"too large", []string{"Bearer " + strings.Repeat("a", 101)}, "", true, oauth.ReasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.values {
				h.Add("Authorization", v)
			}
			tok, present, err := oauth.BearerToken(h, 100)
			if tok != tc.token || present != tc.present || reason(err) != tc.reason {
				t.Errorf("got %q %v %v", tok, present, err)
			}
		})
	}
}
