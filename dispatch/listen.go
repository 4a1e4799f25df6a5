package dispatch

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/session"
)

// listenRetry is the pause before the upstream's standalone stream is
// opened again after it ended cleanly.
const listenRetry = time.Second

// listen holds the upstream's standalone event stream open for the life of
// the session: a GET with the upstream session id, through the same next
// handler the messages take. What a server sends outside any request
// (tools/list_changed, resource updates, requests of its own) arrives
// there, and is relayed onto the session's stream like any reply.
//
// An upstream that offers no such stream (405, as stateless servers
// answer) or refuses it ends the listening; one that ends it cleanly is
// asked again after a pause.
func (d *Dispatcher) listen(c Call, t *requestTemplate) {
	sess := c.Session
	// A new upstream session (after initialize again) may listen anew.
	defer sess.StopListening()
	for sess.Context().Err() == nil {
		upstreamID, version := sess.Upstream()
		if upstreamID == "" {
			return
		}
		rep := newReply(d.MaxMessageSize)
		rep.onMessage = func(m json.RawMessage) {
			env, ok := readEnvelope(m)
			if !ok || !env.version2 {
				rep.noteBad("upstream sent a message that is not JSON-RPC 2.0: " + snippet(m))
				return
			}
			if err := sess.Send(sess.Context(), m, d.QueueWait); err != nil {
				d.Logger.Debug("dropping upstream message", zap.String("session", session.ShortID(sess.ID)), zap.Error(err))
			}
		}
		// Bound by the session only: this stream is meant to stay open.
		ctx, cancel := context.WithCancel(t.ctx)
		rep.gate = &cancelGate{cancel: cancel}
		stop := context.AfterFunc(sess.Context(), rep.gate.Cancel)
		request := func() *http.Request {
			req := t.sessionRequest(ctx, http.MethodGet, rep, upstreamID, version)
			req.Header.Set("Accept", "text/event-stream")
			return req
		}
		err := d.serve(c.Next, rep, request)
		stop()
		cancel()
		if sess.Context().Err() != nil {
			return
		}
		if err != nil || rep.status != http.StatusOK || rep.mode != modeSSE {
			d.Logger.Debug("upstream offers no standalone stream",
				zap.String("session", session.ShortID(sess.ID)), zap.Int("status", rep.status), zap.Error(err))
			return
		}
		select {
		case <-sess.Done():
			return
		case <-time.After(listenRetry):
		}
	}
}
