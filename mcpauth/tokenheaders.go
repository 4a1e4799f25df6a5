package mcpauth

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The client's token, and the headers mcp_auth sets in its place, kept
// where they belong: off the request that goes on (its headers and its
// trailers), and out of the config where they could not work.

// removeToken takes the client's token off the request, or moves it to
// the header the operator named.
func (h *Handler) removeToken(r *http.Request) {
	value := r.Header.Get("Authorization")
	r.Header.Del("Authorization")
	if h.ForwardTokenHeader != "" {
		r.Header.Set(h.ForwardTokenHeader, value)
	}
}

// ownHeaders are the headers mcp_auth alone fills for the next handler:
// Authorization (the client's token is removed from it, or an exchanged
// token put there), the token exchange's header, forward_token's.
func (h *Handler) ownHeaders() []string {
	names := []string{"Authorization"}
	if h.TokenExchange != nil {
		names = append(names, h.TokenExchange.header())
	}
	if h.ForwardTokenHeader != "" {
		names = append(names, h.ForwardTokenHeader)
	}
	return names
}

// guardTrailers keeps mcp_auth's own headers out of r's trailers. A
// client that declares a trailer (Trailer: X) may send any fields after
// a chunked body, Authorization among them: net/http merges them all
// into r.Trailer when the body ends, and reverse_proxy passes r.Trailer
// on, so the client's own token would reach the upstream as an
// Authorization trailer (or a value of its choice as the exchanged
// token's header). Without a declared trailer r.Trailer is nil and
// stays so for the handlers after this one: nothing to guard.
func (h *Handler) guardTrailers(r *http.Request) {
	if r.Trailer == nil || r.Body == nil || r.Body == http.NoBody {
		return
	}
	r.Body = &trailerGuard{ReadCloser: r.Body, trailer: r.Trailer, names: h.ownHeaders()}
}

// trailerGuard drops names from trailer when the body ends: that is when
// net/http has filled the trailer in (HTTP/2 too: before the body's
// EOF), and before a reader wrapping this one (reverse_proxy's) copies
// it on; the upstream gets trailers only after the body.
type trailerGuard struct {
	io.ReadCloser
	trailer http.Header
	names   []string
}

func (g *trailerGuard) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err == io.EOF {
		for _, name := range g.names {
			g.trailer.Del(name)
		}
	}
	return n, err
}

// checkTokenHeader says why name cannot carry a token on to the next
// handler: it is not a header name, or one that HTTP or the proxy handles
// itself (hop-by-hop, framing, Host, Cookie), where a token would go
// nowhere or break the request.
func checkTokenHeader(name string) error {
	if !validHeaderName(name) {
		return fmt.Errorf("%q is not a header name", name)
	}
	switch http.CanonicalHeaderKey(name) {
	case "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Content-Type", "Content-Encoding", "Cookie":
		return fmt.Errorf("%q is handled by HTTP or the proxy itself: a token there would go nowhere; name another header", name)
	}
	return nil
}

func validHeaderName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return name != ""
}
