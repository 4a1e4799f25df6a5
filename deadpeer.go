package mcpsse

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// A peer that vanishes without closing its connection (a laptop closed, a
// NAT entry dropped) leaves a socket whose writes still succeed: they land
// in the kernel's send buffer, and the kernel retransmits them for about
// fifteen minutes before it gives up. send_timeout alone cuts such a
// stream only once that buffer is full, which keepalives take hours to do.
// So each stream's connection gets TCP_USER_TIMEOUT: data left
// unacknowledged that long, a keepalive for instance, fails the socket and
// the stream ends. See unackedTimeout for how long.

type connCtxKey struct{}

// registerConnContext makes each connection of the server this handler is
// provisioned in reachable from its requests.
func registerConnContext(ctx caddy.Context) {
	srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok {
		return
	}
	srv.RegisterConnContext(func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connCtxKey{}, c)
	})
}

// unackedTimeout is twice the longer of send_timeout and the keepalive
// interval (60s by default). Linux counts a peer's zero receive window
// against the same timeout, so a peer that is there but has stopped
// reading could otherwise be cut by the kernel before its write blocks
// for send_timeout, and be logged as gone. This long, such a peer always
// meets the write deadline first and is closed as send_timeout, while a
// vanished peer is still found within a keepalive interval or two, not a
// quarter of an hour.
func unackedTimeout(o sse.Options) time.Duration {
	return 2 * max(o.SendTimeout, o.Keepalive)
}

// bindUnackedTimeout sets the kernel's unacknowledged-data timeout of the
// stream's connection and reports whether it could. Only HTTP/1.x: an HTTP/2 connection carries other
// requests, whose fate this stream must not decide.
func bindUnackedTimeout(r *http.Request, timeout time.Duration) bool {
	if timeout <= 0 || r.ProtoMajor != 1 {
		return false
	}
	c, _ := r.Context().Value(connCtxKey{}).(net.Conn)
	for c != nil {
		switch conn := c.(type) {
		case *net.TCPConn:
			return setUserTimeout(conn, timeout) == nil
		case *tls.Conn:
			c = conn.NetConn()
		case interface{ NetConn() net.Conn }:
			c = conn.NetConn()
		default:
			return false
		}
	}
	return false
}
