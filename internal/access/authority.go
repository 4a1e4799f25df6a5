package access

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// HostNamesThisSite reports whether the host the request names
// (RequestHost) can be taken to name this site, not another server:
// what a handler that builds a URI from it to check something against
// (mcp_auth, the audience of a token) must know, since a client picks
// its Host freely. It can when a trusted proxy says so (the operator
// trusts it to forward only its own hosts), or when the Host header's
// port is the one the connection came in on (the scheme's default when
// it names none) and its host is one the site's host matchers serve, or,
// on a site without them, a loopback name on a loopback connection or
// the listener's own address: names no other server answers to.
// Caddy's host matchers ignore the port, so without the port check
// Host: mcp.example.com:8443 reaches the site for mcp.example.com and
// names the server on 8443.
func HostNamesThisSite(r *http.Request, site *Site) bool {
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		return true
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	listener, err := netip.ParseAddrPort(local.String())
	if err != nil {
		return false // not an IP listener (a unix socket): only a trusted proxy vouches
	}
	host, port := splitHostPort(r.Host, RequestScheme(r))
	if port != listener.Port() {
		return false
	}
	if site != nil && site.ServesHost(r) {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap() == listener.Addr().Unmap()
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return listener.Addr().IsLoopback() && (host == "localhost" || strings.HasSuffix(host, ".localhost"))
}

// splitHostPort is hostport's host and port, the scheme's default port
// when it names none; port 0 when it names one that is not a number.
func splitHostPort(hostport, scheme string) (string, uint16) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		if scheme == "https" {
			return strings.Trim(hostport, "[]"), 443
		}
		return strings.Trim(hostport, "[]"), 80
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return host, 0
	}
	return host, uint16(port)
}
