// Package access holds the guards both handlers apply to who may use
// them: the MCP specification's Origin check with its CORS headers, the
// identity a request carries, and the client address limits count by.
package access

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// DefaultIdentity is the placeholder that names who a request comes from:
// the user id that Caddy's authentication handlers (basic_auth,
// forward_auth with copy_headers into it, and others) set.
const DefaultIdentity = "{http.auth.user.id}"

// Decision is what CheckOrigin found.
type Decision int

const (
	OriginNone      Decision = iota // no Origin header: not a browser, or same-origin GET
	OriginSame                      // the page's origin is the site's own
	OriginListed                    // a listed cross-origin browser client: gets CORS headers
	OriginForbidden                 // anything else
)

// CheckOrigin applies the MCP spec's Origin validation, which guards local
// servers against DNS rebinding: a request without Origin is fine
// (non-browser clients send none), one from the site's own origin is fine
// (see SameOrigin), one from an origin in allowed is fine, anything else is
// refused. site is what the routes say of the handler's site (see Sites).
func CheckOrigin(r *http.Request, allowed []string, site *Site) Decision {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return OriginNone
	}
	if slices.Contains(allowed, "*") || slices.Contains(allowed, origin) {
		return OriginListed
	}
	if SameOrigin(origin, r, site) {
		return OriginSame
	}
	return OriginForbidden
}

// SameOrigin reports whether origin is the site the request reached: the
// scheme it came in on, the host and port it was sent to, and a host that
// a rebinding attacker cannot pick. In a rebinding attack the browser
// sends the attacker's name as both Host and Origin, so their agreeing
// proves nothing; what does is a host the site is configured for (its
// host matchers), a loopback name, or an IP literal, which no DNS answer
// stands behind. A catch-all site (no host matchers) thus trusts only the
// last two.
func SameOrigin(origin string, r *http.Request, site *Site) bool {
	u, err := url.Parse(origin)
	scheme := RequestScheme(r)
	if err != nil || u.Scheme != scheme || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return false
	}
	if !strings.EqualFold(withoutDefaultPort(u.Host, scheme), withoutDefaultPort(r.Host, scheme)) {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return site != nil && site.ServesHost(r)
}

// RequestScheme is the scheme the client used: the connection's, or what
// a trusted proxy in front said it was.
func RequestScheme(r *http.Request) string {
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if proto := r.Header.Get("X-Forwarded-Proto"); proto == "http" || proto == "https" {
			return proto
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// RequestHost is the host (and port) the client sent the request to: the
// Host header, or what a trusted proxy in front said it was in
// X-Forwarded-Host (its last value, as reverse_proxy reads it). A value
// that is not a plain host[:port] is ignored: it is about to be written
// into URLs that clients follow.
func RequestHost(r *http.Request) string {
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if v := r.Header.Values("X-Forwarded-Host"); len(v) > 0 {
			last := strings.TrimSpace(v[len(v)-1])
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = strings.TrimSpace(last[i+1:])
			}
			if validHost(last) {
				return last
			}
		}
	}
	return r.Host
}

// validHost reports whether h is host[:port] and nothing else.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	u, err := url.Parse("http://" + h)
	return err == nil && u.Host == h && u.User == nil && u.Path == "" && u.RawQuery == "" && u.Fragment == ""
}

func withoutDefaultPort(hostport, scheme string) string {
	if scheme == "https" {
		return strings.TrimSuffix(hostport, ":443")
	}
	return strings.TrimSuffix(hostport, ":80")
}

// SetCORS adds the CORS headers a listed browser origin needs.
func SetCORS(w http.ResponseWriter, r *http.Request, allowed []string) {
	hdr := w.Header()
	hdr.Add("Vary", "Origin")
	if slices.Contains(allowed, "*") {
		hdr.Set("Access-Control-Allow-Origin", "*")
		return
	}
	hdr.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	hdr.Set("Access-Control-Allow-Credentials", "true")
}

// ValidOrigins checks a list of allowed origins: each is "*" or
// scheme://host[:port].
func ValidOrigins(allowed []string) error {
	for _, o := range allowed {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return &OriginError{o}
		}
	}
	return nil
}

// OriginError names an entry of allowed_origins that is not an origin.
type OriginError struct{ Origin string }

func (e *OriginError) Error() string {
	return fmt.Sprintf("allowed_origins: %q is not an origin (scheme://host[:port])", e.Origin)
}

// Identity is who the request comes from, as the placeholder names it;
// "" when no authentication handler said, or when placeholder is "off".
func Identity(r *http.Request, placeholder string) string {
	if placeholder == "off" {
		return ""
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	if key, ok := wholePlaceholder(placeholder); ok {
		// What ReplaceAll gives for it, without building a copy of the
		// value: every POST asks.
		v, _ := repl.Get(key)
		return caddy.ToString(v)
	}
	return repl.ReplaceAll(placeholder, "")
}

// wholePlaceholder returns the key of s if s is one placeholder and
// nothing else, as the default identity is: "{key}", without braces or
// escapes inside.
func wholePlaceholder(s string) (key string, ok bool) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return "", false
	}
	key = s[1 : len(s)-1]
	if strings.ContainsAny(key, `{}\`) {
		return "", false
	}
	return key, true
}

// ClientKey is what per-client limits count a request under: its
// client's IPv4 address, or the /64 of its IPv6 address. One IPv6 host is
// usually given a whole /64 (SLAAC, privacy addresses, a provider's
// delegation), so counting by full address would let one client take
// every slot by walking its prefix.
func ClientKey(r *http.Request) string {
	ip := ClientIP(r)
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	p, _ := addr.WithZone("").Prefix(64)
	return p.String()
}

// ClientIP is the client's address as Caddy determined it (trusted
// proxies taken into account), falling back to the connection's.
func ClientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
