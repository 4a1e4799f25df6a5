package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/generation"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// Backoff of the listen stream's reopening after it ended on its own.
const (
	listenBackoffMin = time.Second
	listenBackoffMax = 30 * time.Second
)

// modernListen holds one subscriptions/listen stream upstream for a
// session on the sessionless path, in place of the legacy standalone
// stream: it asks for the list changes the server advertises and the
// subscribed resources, relays what comes onto the client's stream, opens
// it again at once when the subscriptions change, and after a pause
// (doubling up to listenBackoffMax) when it ends on its own.
func (d *Dispatcher) modernListen(c Call, t *requestTemplate, st *generation.Session) {
	sess := c.Session
	defer sess.StopListening()
	backoff := listenBackoffMin
	for n := 1; sess.Context().Err() == nil; n++ {
		ctx, cancel := context.WithCancel(sess.Context())
		changed := make(chan struct{})
		go func() {
			select {
			case <-st.Changed():
				close(changed)
				cancel()
			case <-ctx.Done():
			}
		}()
		id := json.RawMessage(fmt.Sprintf(`"mcp-sse-listen-%d"`, n))
		body := st.ListenRequest(id)
		head := Message{Raw: body, ID: id, Method: "subscriptions/listen", ProtocolVersion: generation.Modern}
		acked := false
		relay := func(m json.RawMessage) {
			if bytes.Contains(m, []byte(`"notifications/subscriptions/acknowledged"`)) {
				acked = true
			}
			out, ok := generation.ListenNotification(m)
			if !ok {
				return
			}
			if err := sess.Send(sess.Context(), out, d.QueueWait); err != nil {
				d.Logger.Debug("dropping upstream notification", zap.String("session", session.ShortID(sess.ID)), zap.Error(err))
			}
		}
		if d.ListenStreams != nil {
			d.ListenStreams(1)
		}
		x := d.stream(ctx, c, t, &head, relay)
		if d.ListenStreams != nil {
			d.ListenStreams(-1)
		}
		cancel()
		select {
		case <-changed:
			backoff = listenBackoffMin
			continue // the subscriptions changed: ask again at once
		default:
		}
		if sess.Context().Err() != nil {
			return
		}
		if acked {
			backoff = listenBackoffMin
		}
		d.Logger.Debug("upstream subscriptions/listen stream ended",
			zap.String("session", session.ShortID(sess.ID)), zap.Int("status", x.status), zap.String("error", x.text),
			zap.Duration("reopen_in", backoff))
		select {
		case <-sess.Done():
			return
		case <-st.Changed():
		case <-time.After(backoff):
			backoff = min(2*backoff, listenBackoffMax)
		}
	}
}

// stream is exchange for a request whose reply is meant to stay open:
// bounded by ctx only, not upstream_timeout.
func (d *Dispatcher) stream(ctx context.Context, c Call, t *requestTemplate, head *Message, other func(json.RawMessage)) exchanged {
	rep := newReply(d.MaxMessageSize)
	rctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	rep.gate = &cancelGate{cancel: cancel}
	defer context.AfterFunc(ctx, rep.gate.Cancel)()
	var answer json.RawMessage
	rep.onMessage = func(m json.RawMessage) {
		env, ok := readEnvelope(m)
		if !ok || !env.version2 {
			rep.noteBad("upstream sent a message that is not JSON-RPC 2.0: " + snippet(m))
			return
		}
		if env.Method.set() {
			other(m)
		} else if sameID(env.ID, head.ID) {
			answer = m
		}
	}
	err := d.serve(c.Next, rep, func() *http.Request {
		return t.messageRequest(rctx, head, "", generation.Modern, rep, nil)
	})
	rep.finish()
	x := exchanged{answer: answer, status: rep.status}
	if err != nil {
		x.text = err.Error()
	}
	return x
}
