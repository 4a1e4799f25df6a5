package mcpsse

// The POST path: a client's message, checked, admitted and dispatched.

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/internal/postbody"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// serveMessage takes one POSTed message (or batch), answers 202 and hands
// it to the upstream in the background.
func (h *Handler) serveMessage(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	id := queryParam(r.URL.RawQuery, "session_id")
	switch {
	case id == "":
		return refuseUnread(w, r, http.StatusBadRequest, dispatch.CodeInvalidRequest, "missing session_id query parameter")
	case !session.ValidID(id):
		return refuseUnread(w, r, http.StatusBadRequest, dispatch.CodeInvalidRequest,
			"malformed session_id: want 1 to 128 characters of A-Z, a-z, 0-9, '-' and '_'")
	}
	setSessionPlaceholder(r, id)
	if h.cluster != nil {
		return h.postToCluster(w, r, next, id)
	}
	sess, ok := h.store.Get(id)
	// A session another handler opened is as unknown here as one that
	// never was: its upstream is another site's.
	if !ok || sess.Closed() || sess.Scope != h.site(r).Scope {
		return refuseUnread(w, r, http.StatusNotFound, dispatch.CodeSessionNotFound, "session not found: open a new stream")
	}
	if who := h.identity(r); who != sess.Identity {
		h.logger.Warn("refusing message: identity does not own the session",
			zap.String("session", session.ShortID(sess.ID)), zap.String("identity", who),
			zap.String("owner", sess.Identity), zap.String("remote_addr", r.RemoteAddr))
		return refuseUnread(w, r, http.StatusForbidden, dispatch.CodeInvalidRequest,
			"this session belongs to another identity")
	}

	post := new(postHold)
	body, hold, err := h.readBody(w, r, sess.ClientKey, &post.body)
	if hold == nil {
		return err // refused, and answered
	}
	msgs, work, refused := h.parseBody(w, body, post.one[:0])
	if msgs == nil {
		hold.Release()
		return refused
	}
	return h.dispatchHere(w, r, next, sess, msgs, work, post)
}

// refuseUnread answers a POST refused before its body was read, and has
// the connection closed after the answer (postbody.CloseUnread).
func refuseUnread(w http.ResponseWriter, r *http.Request, status, code int, msg string) error {
	postbody.CloseUnread(w, r)
	return writeError(w, status, code, msg)
}

// parseBody parses a POST's body within max_batch_size and max_inflight.
// It returns the messages and how many of them are requests or
// notifications (the rest are responses); nil messages mean the body was
// refused and answered (refused is that write's error).
func (h *Handler) parseBody(w http.ResponseWriter, body []byte, dst []dispatch.Message) (msgs []dispatch.Message, work int, refused error) {
	msgs, work, ref := postbody.ParseBatch(dst, body, h.MaxBatchSize, h.MaxInflight)
	if ref != nil {
		return nil, 0, ref.Write(w)
	}
	return msgs, work, nil
}

// dispatchHere admits a POST's messages on a session held here and
// dispatches them; post.body gives back the body's bytes once the last
// of them has ended.
func (h *Handler) dispatchHere(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, sess *session.Session, msgs []dispatch.Message, work int, post *postHold) error {
	responses := len(msgs) - work
	dispatched := false
	defer func() {
		if !dispatched {
			post.body.Release()
		}
	}()
	if !sess.Admit(work, responses, h.MaxInflight) {
		metrics.refused.WithLabelValues("max_inflight").Inc()
		w.Header().Set("Retry-After", "1")
		return writeError(w, http.StatusTooManyRequests, dispatch.CodeServerBusy,
			fmt.Sprintf("too many requests in flight on this session (max_inflight %d); retry when some are answered", h.MaxInflight))
	}

	metrics.messagesIn.Add(float64(len(msgs)))
	var shared *dispatch.Template
	if len(msgs) > 1 {
		// A batch's messages share one copy of the POST's placeholders,
		// vars and headers (a single message's dispatch makes its own).
		shared = h.dispatcher.Template(r)
	}
	post.remaining.Store(int32(len(msgs)))
	for i, m := range msgs {
		var end *messageEnd
		if i == 0 {
			end = &post.first // a single message's dispatch costs one allocation here
		} else {
			end = new(messageEnd)
		}
		end.post, end.sess, end.response = post, sess, m.Method == ""
		sess.CountIn()
		h.dispatcher.Go(dispatch.Call{Session: sess, Message: m, Post: r, Next: next, End: end, Template: shared})
	}
	// The dispatches have their copies: post, which lives as long as the
	// first of them, must not keep the body once they let go of it.
	clear(msgs)
	dispatched = true
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// postHold is a POST's hold on its body, shared by its messages'
// dispatches: the last of them to let go of it releases it. A single
// message's POST needs nothing more: its message and its end are here
// too, in the same allocation.
type postHold struct {
	remaining atomic.Int32
	body      postbody.Hold
	one       [1]dispatch.Message // a single message, parsed
	first     messageEnd          // the first message's
}

// messageEnd is what one message's dispatch tells of its end (a
// dispatch.CallEnd).
type messageEnd struct {
	post     *postHold
	sess     *session.Session
	response bool
	let      atomic.Bool // set once this message has let go
}

func (e *messageEnd) LetGo() {
	if e.let.CompareAndSwap(false, true) && e.post.remaining.Add(-1) == 0 {
		e.post.body.Release() // the last of the body's messages has let go of it
	}
}

func (e *messageEnd) Done() {
	e.sess.Finished(e.response)
	e.LetGo()
}

// readBody reads a POST's body within max_message_size, body_timeout and
// max_pending_bytes, counted by into, which it returns as hold.
// hold.Release gives back the body's bytes to the process-wide count; it
// is to be called once nothing holds the body any more. A nil hold means
// the body was refused: the response has been written (err is that
// write's) and nothing is held. client is what the poster is counted
// under.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, client string, into *postbody.Hold) (body []byte, hold *postbody.Hold, err error) {
	budget := postbody.Budget{Held: h.store.held, Clients: h.store.clientBytes}
	body, hold, ref := postbody.ReadInto(into, w, r, budget, postbody.Limits{
		MaxMessageSize: h.MaxMessageSize,
		Timeout:        positive(h.BodyTimeout),
		MaxPending:     h.MaxPendingBytes,
	}, client)
	if ref == nil {
		return body, hold, nil
	}
	if ref.Reason == postbody.ReasonPending {
		metrics.refused.WithLabelValues("max_pending_bytes").Inc()
		h.logger.Warn("refusing message: max_pending_bytes reached", zap.Int64("max_pending_bytes", h.MaxPendingBytes))
	}
	return nil, nil, ref.Write(w)
}

// queryParam is url.Values.Get for one parameter of a raw query, without
// building the whole map (every POST asks for session_id). Like
// url.ParseQuery it splits on '&' only, skips pairs holding a ';', and
// takes the first value of a repeated key.
func queryParam(rawQuery, key string) string {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if k != key {
			if !strings.ContainsAny(k, "%+") {
				continue
			}
			if uk, err := url.QueryUnescape(k); err != nil || uk != key {
				continue
			}
		}
		if !strings.ContainsAny(v, "%+") {
			return v
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			return uv
		}
	}
	return ""
}
