package dispatch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpsse/caddy-mcp-sse/session"
)

// End sends the upstream session of sess, if it has one, a DELETE, as the
// Streamable HTTP transport asks of a client that is done. r is the
// request that held the stream; path is where messages are posted, so
// the DELETE takes the route the messages took.
func (d *Dispatcher) End(ctx context.Context, sess *session.Session, r *http.Request, next caddyhttp.Handler, path string) error {
	upstreamID, version := sess.Upstream()
	if upstreamID == "" {
		return nil
	}
	t := template(r, d.ForwardHeaders)
	t.url = url.URL{Path: path}
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
