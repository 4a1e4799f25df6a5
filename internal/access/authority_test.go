package access

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestHostNamesThisSite: a Host names this site when its port is the
// listener's (the scheme's default when it has none) and its host is
// the site's own, or, on a catch-all site, a loopback name on a
// loopback listener or the listener's address; anything a client could
// pick to name another server does not.
func TestHostNamesThisSite(t *testing.T) {
	named := &Site{hosts: []caddyhttp.MatchHost{{"mcp.test"}}}
	loop := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8080}
	public := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 443}
	for _, tc := range []struct {
		name, host string
		local      net.Addr
		tls        bool
		site       *Site
		want       bool
	}{
		{"the site's name and the listener's port", "mcp.test:8080", loop, false, named, true},
		{"the site's name, another port", "mcp.test:8443", loop, false, named, false},
		{"the site's name, no port, listener on 443", "mcp.test", public, true, named, true},
		{"the site's name, no port, listener on 8080", "mcp.test", loop, false, named, false},
		{"the site's name, a port that is no number", "mcp.test:x", loop, false, named, false},
		{"another name on a catch-all site", "evil.test:8080", loop, false, &Site{}, false},
		{"another name, no site known", "evil.test:8080", loop, false, nil, false},
		{"localhost on a loopback listener", "localhost:8080", loop, false, &Site{}, true},
		{"localhost. on a loopback listener", "localhost.:8080", loop, false, &Site{}, true},
		{"localhost on a public listener", "localhost", public, true, &Site{}, false},
		{"the listener's IP", "127.0.0.1:8080", loop, false, &Site{}, true},
		{"another loopback IP", "127.0.0.2:8080", loop, false, &Site{}, false},
		{"the listener's IP, IPv4 in IPv6", "127.0.0.1:8080", &net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 8080}, false, &Site{}, true},
		{"IPv6 listener", "[::1]:8080", &net.TCPAddr{IP: net.ParseIP("::1"), Port: 8080}, false, &Site{}, true},
		{"a unix socket", "mcp.test", &net.UnixAddr{Name: "/run/caddy.sock", Net: "unix"}, false, named, false},
		{"no listener known", "mcp.test:8080", nil, false, named, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://placeholder/sse", nil)
			r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
			r.Host = tc.host
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tc.local != nil {
				r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tc.local))
			}
			if got := HostNamesThisSite(r, tc.site); got != tc.want {
				t.Errorf("Host %q on %v: %v, want %v", tc.host, tc.local, got, tc.want)
			}
		})
	}
}
