package access

import (
	"context"
	"crypto/tls"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestSameOrigin: the Host and Origin headers agreeing proves nothing
// (a rebinding attacker picks both); the site's own host names, loopback
// names and IP literals do, with the request's scheme and port.
func TestSameOrigin(t *testing.T) {
	named := &Site{hosts: []caddyhttp.MatchHost{{"mcp.test"}}}
	tests := []struct {
		name, host, origin string
		tls                bool
		site               *Site
		want               bool
	}{
		{"rebound name on a catch-all site", "evil.test:8080", "http://evil.test:8080", false, &Site{}, false},
		{"rebound name, no site known", "evil.test", "http://evil.test", false, nil, false},
		{"IPv4 literal", "127.0.0.1:8080", "http://127.0.0.1:8080", false, &Site{}, true},
		{"IPv6 literal", "[::1]:8080", "http://[::1]:8080", false, &Site{}, true},
		{"localhost", "localhost:8080", "http://localhost:8080", false, &Site{}, true},
		{"a .localhost name", "app.localhost", "http://app.localhost", false, &Site{}, true},
		{"the site's own name", "mcp.test", "http://mcp.test", false, named, true},
		{"the site's name, default port spelled out", "mcp.test:443", "https://mcp.test", true, named, true},
		{"another scheme", "mcp.test", "https://mcp.test", false, named, false},
		{"another port", "mcp.test:8080", "http://mcp.test:9090", false, named, false},
		{"userinfo", "mcp.test", "http://user@mcp.test", false, named, false},
		{"a path", "mcp.test", "http://mcp.test/x", false, named, false},
		{"another name on a named site", "evil.test", "http://evil.test", false, named, false},
		{"null", "mcp.test", "null", false, named, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://"+tc.host+"/sse", nil)
			// As Caddy prepares a request: host matchers read its replacer.
			r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
			r.Host = tc.host
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := SameOrigin(tc.origin, r, tc.site); got != tc.want {
				t.Errorf("SameOrigin(%q) with Host %q = %v, want %v", tc.origin, tc.host, got, tc.want)
			}
		})
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ name, remote, want string }{
		{"ipv4", "192.0.2.7:5000", "192.0.2.7"},
		{"ipv4-mapped ipv6", "[::ffff:192.0.2.7]:5000", "192.0.2.7"},
		{"ipv6 keyed on its /64", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:5000", "2001:db8:1:2::/64"},
		{"another address of the same /64", "[2001:db8:1:2::1]:5000", "2001:db8:1:2::/64"},
		{"another /64", "[2001:db8:1:3::1]:5000", "2001:db8:1:3::/64"},
		{"zone dropped", "[fe80::1%eth0]:5000", "fe80::/64"},
		{"not an address", "pipe", "pipe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if got := ClientKey(r); got != tc.want {
				t.Errorf("ClientKey(%s) = %q, want %q", tc.remote, got, tc.want)
			}
		})
	}
}

// TestRequestHost: X-Forwarded-Host counts only from a trusted proxy, its
// last value, and only when it is a plain host[:port].
func TestRequestHost(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted bool
		fwd     []string
		want    string
	}{
		{"untrusted", false, []string{"public.example"}, "internal:8080"},
		{"trusted", true, []string{"public.example"}, "public.example"},
		{"trusted, with port", true, []string{"public.example:8443"}, "public.example:8443"},
		{"trusted, last of a list", true, []string{"first.example, last.example"}, "last.example"},
		{"trusted, last header", true, []string{"first.example", "last.example"}, "last.example"},
		{"trusted, none", true, nil, "internal:8080"},
		{"trusted, a path", true, []string{"evil.example/x"}, "internal:8080"},
		{"trusted, userinfo", true, []string{"user@evil.example"}, "internal:8080"},
		{"trusted, a query", true, []string{"evil.example?x"}, "internal:8080"},
		{"trusted, empty", true, []string{""}, "internal:8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://internal:8080/sse", nil)
			for _, v := range tc.fwd {
				r.Header.Add("X-Forwarded-Host", v)
			}
			r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
			caddyhttp.SetVar(r.Context(), caddyhttp.TrustedProxyVarKey, tc.trusted)
			if got := RequestHost(r); got != tc.want {
				t.Errorf("RequestHost = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestIdentity: the identity is what Caddy's ReplaceAll makes of the
// placeholder, whether it is one placeholder (read without ReplaceAll)
// or anything else.
func TestIdentity(t *testing.T) {
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "alice")
	repl.Set("user.number", 42)
	repl.Set("user.empty", "")
	r := httptest.NewRequest("POST", "/message", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	for _, placeholder := range []string{
		DefaultIdentity, "{user.number}", "{user.empty}", "{user.unset}", "{}",
		"{http.auth.user.id}@{user.number}", "user-{http.auth.user.id}", `{http.auth\}.user.id}`,
		"{http.auth.user.id", "http.auth.user.id}", "plain", "",
	} {
		if got, want := Identity(r, placeholder), repl.ReplaceAll(placeholder, ""); got != want {
			t.Errorf("Identity(%q) = %q, ReplaceAll gives %q", placeholder, got, want)
		}
	}
	if got := Identity(r, "off"); got != "" {
		t.Errorf(`Identity("off") = %q, want ""`, got)
	}
	if got := Identity(r, DefaultIdentity); got != "alice" {
		t.Errorf("Identity(%q) = %q, want alice", DefaultIdentity, got)
	}
}
