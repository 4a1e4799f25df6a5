package dispatch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpsse/caddy-mcp-sse/session"
)

// Ender returns what ends the upstream session of sess, whenever that
// comes: a DELETE, as the Streamable HTTP transport asks of a client that
// is done, if the session has an upstream session by then. r is the
// request that held the stream, copied now (a detached session ends long
// after it returned); path is where messages are posted, so the DELETE
// takes the route the messages took.
func (d *Dispatcher) Ender(r *http.Request, next caddyhttp.Handler, path string) func(ctx context.Context, sess *session.Session) error {
	t := template(r, d.ForwardHeaders)
	t.url = url.URL{Path: path}
	return func(ctx context.Context, sess *session.Session) error {
		return d.end(ctx, sess, t, next)
	}
}

func (d *Dispatcher) end(ctx context.Context, sess *session.Session, t *requestTemplate, next caddyhttp.Handler) error {
	upstreamID, version := sess.Upstream()
	if upstreamID == "" {
		return nil
	}
	rep := newReply(maxErrorSnippet)
	request := func() *http.Request {
		return t.sessionRequest(ctx, http.MethodDelete, rep, upstreamID, version)
	}
	if err := d.serve(next, rep, request); err != nil {
		return err
	}
	if rep.status >= 400 && rep.status != http.StatusNotFound && rep.status != http.StatusMethodNotAllowed {
		return fmt.Errorf("upstream answered DELETE with HTTP %d", rep.status)
	}
	return nil
}
