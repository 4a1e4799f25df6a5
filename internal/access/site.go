package access

// What a handler knows of the site it serves, read off its server's
// routes: the host names the site is configured for (the Origin check
// trusts those), and the handler's place in the routes, which scopes its
// state (mcp_sse's sessions) so that no other site can reach it.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Site is what one server's routes say of a handler.
type Site struct {
	// hosts are the host matchers on the way from the server to the
	// handler; none for a catch-all site.
	hosts []caddyhttp.MatchHost
	// Scope names the handler's place: the server's listeners, the
	// matchers on the way to it, and what the handler adds (its paths).
	// It stays the same across a reload that keeps the site's address
	// and the handler's paths, so state of the old config (sessions)
	// stays reachable from the new one.
	Scope string
}

// Sites holds the Site of each server one handler serves in (one, but
// for named routes invoked from several).
type Sites struct {
	m     sync.Map // *caddyhttp.Server → *Site
	extra string
	// anyPort leaves the server's listeners out of the scope: instances of
	// a cluster name the same site alike, whatever ports they listen on.
	anyPort bool
}

// NewSites returns an empty cache for a handler whose scope also names
// extra (what tells it from a handler at the same place: its paths).
func NewSites(extra string) *Sites { return &Sites{extra: extra} }

// NewClusterSites is NewSites for a handler whose sessions are shared by
// instances that may listen on other ports: a scope names the site's
// matchers and the handler's paths, not the listeners.
func NewClusterSites(extra string) *Sites { return &Sites{extra: extra, anyPort: true} }

// Of returns what the routes of the server handling r say of handler.
func (c *Sites) Of(r *http.Request, handler caddyhttp.MiddlewareHandler) *Site {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if v, ok := c.m.Load(srv); ok {
		return v.(*Site)
	}
	v, _ := c.m.LoadOrStore(srv, readSite(srv, handler, c.extra, c.anyPort))
	return v.(*Site)
}

func readSite(srv *caddyhttp.Server, handler caddyhttp.MiddlewareHandler, extra string, anyPort bool) *Site {
	var b strings.Builder
	info := &Site{}
	if srv != nil {
		if !anyPort {
			fmt.Fprintf(&b, "listen %q\n", srv.Listen)
		}
		if path, ok := findHandler(srv.Routes, handler, nil); ok {
			for _, sets := range path {
				b.WriteString("route")
				for _, set := range sets {
					b.WriteString(" [")
					for _, m := range set {
						// Matchers are loaded as pointers; a config built
						// in Go may hold values.
						switch m := m.(type) {
						case *caddyhttp.MatchHost:
							info.hosts = append(info.hosts, *m)
							fmt.Fprintf(&b, "host %q ", []string(*m))
						case caddyhttp.MatchHost:
							info.hosts = append(info.hosts, m)
							fmt.Fprintf(&b, "host %q ", []string(m))
						case *caddyhttp.MatchPath:
							fmt.Fprintf(&b, "path %q ", []string(*m))
						case caddyhttp.MatchPath:
							fmt.Fprintf(&b, "path %q ", []string(m))
						default:
							fmt.Fprintf(&b, "%T ", m)
						}
					}
					b.WriteString("]")
				}
				b.WriteString("\n")
			}
		}
	}
	b.WriteString(extra)
	sum := sha256.Sum256([]byte(b.String()))
	info.Scope = hex.EncodeToString(sum[:8])
	return info
}

// findHandler returns the matcher sets of the routes that lead to target
// (a pointer, compared by identity), the outermost first.
func findHandler(routes caddyhttp.RouteList, target caddyhttp.MiddlewareHandler, path []caddyhttp.MatcherSets) ([]caddyhttp.MatcherSets, bool) {
	for _, route := range routes {
		here := append(path[:len(path):len(path)], route.MatcherSets)
		for _, handler := range route.Handlers {
			if handler == target {
				return here, true
			}
			if sub, ok := handler.(*caddyhttp.Subroute); ok {
				if found, ok := findHandler(sub.Routes, target, here); ok {
					return found, true
				}
			}
		}
	}
	return nil, false
}

// ServesHost reports whether the site is configured for the request's
// host, as its host matchers say.
func (s *Site) ServesHost(r *http.Request) bool {
	for _, m := range s.hosts {
		if m.Match(r) {
			return true
		}
	}
	return false
}
