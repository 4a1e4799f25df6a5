package mcpstdio

// subscriptions/listen: a 2026-07-28 client's stream of the notifications
// it opted in to. The response stays open: it starts with
// notifications/subscriptions/acknowledged, then carries the process's
// list changes and resources/updated for the URIs asked for (subscribed
// on the process with resources/subscribe while a stream holds them),
// each tagged with the listen request's id, and keepalive comments.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/generation"
	"github.com/mcpsse/caddy-mcp-sse/session"
	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// listener is one open subscriptions/listen stream.
type listener struct {
	st     *stream
	id     json.RawMessage // the listen request's id: the subscription id
	agreed generation.Listen
}

func (h *Handler) serveListen(w http.ResponseWriter, r *http.Request, s *mcpSession, m dispatch.Message) error {
	if !acceptsSSE(r) {
		return writeError(w, http.StatusNotAcceptable, dispatch.CodeInvalidRequest, "subscriptions/listen is answered as text/event-stream, which the Accept header does not allow")
	}
	want, err := generation.ParseListen(paramsOf(m.Raw))
	if err != nil {
		return writeError(w, http.StatusBadRequest, dispatch.CodeInvalidParams, err.Error())
	}
	l := &listener{st: newStream(true), id: bytes.Clone(m.ID), agreed: want.Agreed(s.keyed.capabilities())}
	defer close(l.st.done)
	fresh, ok := s.addListener(l)
	if !ok {
		w.Header().Set("Retry-After", "5")
		return writeError(w, http.StatusTooManyRequests, dispatch.CodeServerBusy, "too many subscriptions/listen streams open on this process")
	}
	defer func() {
		for _, uri := range s.removeListener(l) {
			_, _ = s.ask("resources/unsubscribe", uriParams(uri), 0)
		}
	}()
	for _, uri := range fresh {
		// Before the acknowledgement: an update after it must not be
		// missed for want of a subscription.
		if _, err := s.ask("resources/subscribe", uriParams(uri), time.Duration(h.SendTimeout)); err != nil {
			h.logger.Warn("resources/subscribe for a listen stream failed",
				zap.String("session", session.ShortID(s.id)), zap.String("uri", uri), zap.Error(err))
		}
	}
	ew := newEventWriter(w, time.Duration(h.SendTimeout))
	ew.start()
	var buf []byte
	write := func(frame []byte) error { return h.streamFrame(s, ew, frame) }
	if write(sse.AppendFrame(buf[:0], sse.EventMessage, generation.Acknowledged(l.id, l.agreed), 0)) != nil {
		return nil
	}
	keepalive := time.NewTimer(keepaliveInterval)
	defer keepalive.Stop()
	for {
		select {
		case it := <-l.st.out:
			buf = sse.AppendFrame(buf[:0], sse.EventMessage, it.msg, 0)
			err := write(buf)
			l.st.written(len(it.msg))
			if err != nil {
				return nil
			}
			keepalive.Reset(keepaliveInterval)
		case <-l.st.cut:
			h.slowConsumer(s, errSlow)
			return nil
		case <-keepalive.C:
			if write([]byte(": keepalive\n\n")) != nil {
				return nil
			}
			keepalive.Reset(keepaliveInterval)
		case <-s.endedCh:
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

func uriParams(uri string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"uri": uri})
	return b
}

// addListener opens a listen stream on the process; fresh are the URIs no
// other stream holds yet (to subscribe on the process).
func (s *mcpSession) addListener(l *listener) (fresh []string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.keyed.listeners) >= maxListeners {
		return nil, false
	}
	s.keyed.listeners[l] = struct{}{}
	for _, uri := range l.agreed.ResourceSubscriptions {
		if s.keyed.subs[uri]++; s.keyed.subs[uri] == 1 {
			fresh = append(fresh, uri)
		}
	}
	s.touch()
	return fresh, true
}

// removeListener closes a listen stream; released are the URIs no stream
// holds any more (to unsubscribe on the process).
func (s *mcpSession) removeListener(l *listener) (released []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keyed.listeners, l)
	for _, uri := range l.agreed.ResourceSubscriptions {
		if s.keyed.subs[uri]--; s.keyed.subs[uri] <= 0 {
			delete(s.keyed.subs, uri)
			released = append(released, uri)
		}
	}
	s.touch()
	return released
}
