package mcpsse

// What a handler knows of the site it serves, read off its server's
// routes: the host names the site is configured for (the Origin check
// trusts those), and the handler's place in the routes, which scopes its
// sessions so that no other site can reach them.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// siteInfo is what one server's routes say of a handler.
type siteInfo struct {
	// hosts are the host matchers on the way from the server to the
	// handler; none for a catch-all site.
	hosts []caddyhttp.MatchHost
	// scope names the handler's place: the server's listeners, the
	// matchers on the way to it, and its paths. It stays the same across
	// a reload that keeps the site's address and the handler's paths, so
	// the sessions of the old config stay reachable from the new one.
	scope string
}

// siteCache holds the siteInfo of each server a handler serves in (one,
// but for named routes invoked from several).
type siteCache struct{ m sync.Map } // *caddyhttp.Server → *siteInfo

// site returns what the routes of the server handling r say of h.
func (h *Handler) site(r *http.Request) *siteInfo {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if v, ok := h.sites.m.Load(srv); ok {
		return v.(*siteInfo)
	}
	info := h.readSite(srv)
	v, _ := h.sites.m.LoadOrStore(srv, info)
	return v.(*siteInfo)
}

func (h *Handler) readSite(srv *caddyhttp.Server) *siteInfo {
	var b strings.Builder
	info := &siteInfo{}
	if srv != nil {
		fmt.Fprintf(&b, "listen %q\n", srv.Listen)
		if path, ok := findHandler(srv.Routes, h, nil); ok {
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
	fmt.Fprintf(&b, "sse_path %q message_path %q\n", h.SSEPath, h.MessagePath)
	sum := sha256.Sum256([]byte(b.String()))
	info.scope = hex.EncodeToString(sum[:8])
	return info
}

// findHandler returns the matcher sets of the routes that lead to h, the
// outermost first.
func findHandler(routes caddyhttp.RouteList, h *Handler, path []caddyhttp.MatcherSets) ([]caddyhttp.MatcherSets, bool) {
	for _, route := range routes {
		here := append(path[:len(path):len(path)], route.MatcherSets)
		for _, handler := range route.Handlers {
			switch handler := handler.(type) {
			case *Handler:
				if handler == h {
					return here, true
				}
			case *caddyhttp.Subroute:
				if found, ok := findHandler(handler.Routes, h, here); ok {
					return found, true
				}
			}
		}
	}
	return nil, false
}

// servesHost reports whether the site is configured for the request's
// host, as its host matchers say.
func (s *siteInfo) servesHost(r *http.Request) bool {
	for _, m := range s.hosts {
		if m.Match(r) {
			return true
		}
	}
	return false
}
