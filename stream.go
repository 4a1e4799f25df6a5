package mcpsse

// The stream's life: opening a session and its SSE response, running it,
// and closing it when it ends.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/session"
	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// serveStream opens a session and streams it until it ends. Its goroutine
// only waits: opening, writing and closing run shallow (see shallow.go).
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	var o openedStream
	runShallow(func() { o = h.openStream(w, r) })
	if o.stream == nil {
		return o.err
	}
	err := errStreamPanicked // what the close sees if Run panics
	defer func() { runShallow(func() { h.closeStream(o, err, r, next) }) }()
	err = o.stream.Run(r.Context(), o.endpoint, o.sess)
	return nil
}

var errStreamPanicked = errors.New("stream panicked")

// openedStream is a session whose stream is ready to run, or the error
// that refused it (its response already written).
type openedStream struct {
	sess     *session.Session
	stream   *sse.Stream
	endpoint string
	client   string
	err      error
}

// openStream admits a session, registers it and writes the response head.
func (h *Handler) openStream(w http.ResponseWriter, r *http.Request) openedStream {
	scope := h.site(r).scope
	client := scope + " " + clientIP(r)
	if !h.store.clients.Acquire(client, h.MaxSessionsPerClient) {
		w.Header().Set("Retry-After", "5")
		h.logger.Warn("refusing stream: per-client session limit reached",
			zap.String("client_ip", clientIP(r)), zap.Int("max_sessions_per_client", h.MaxSessionsPerClient))
		return openedStream{err: writeError(w, http.StatusServiceUnavailable, dispatch.CodeInternalError,
			fmt.Sprintf("too many sessions from this client (limit %d); retry later", h.MaxSessionsPerClient))}
	}
	// Until the stream is ready, any way out (a refusal, a panic) gives
	// back the client's slot and the session's place in the store.
	var sess *session.Session
	counted, added, ready := false, false, false
	defer func() {
		if ready {
			return
		}
		if added {
			sess.Close(session.ReasonWriteError)
			h.store.Remove(sess.ID)
		}
		if counted {
			h.store.handlers.Release(scope)
		}
		h.store.clients.Release(client)
	}()
	sess = session.New(session.NewID(), r.RemoteAddr, h.QueueSize)
	sess.Identity = h.identity(r)
	sess.Scope = scope
	setSessionPlaceholder(r, sess.ID)
	counted = h.store.handlers.Acquire(scope, h.MaxSessions)
	if !counted {
		w.Header().Set("Retry-After", "5")
		h.logger.Warn("refusing stream: session limit reached", zap.Int("max_sessions", h.MaxSessions))
		return openedStream{err: writeError(w, http.StatusServiceUnavailable, dispatch.CodeInternalError,
			fmt.Sprintf("too many sessions (limit %d); retry later", h.MaxSessions))}
	}
	if err := h.store.Add(sess, 0); err != nil {
		return openedStream{err: writeError(w, http.StatusInternalServerError, dispatch.CodeInternalError, err.Error())}
	}
	added = true

	// Debug lines go through Check: their fields would otherwise be built,
	// and kept until the next collection, for every stream.
	if d := unackedTimeout(h.streamOpts); bindUnackedTimeout(r, d) {
		if ce := h.logger.Check(zapcore.DebugLevel, "stream connection fails after unacknowledged data outlives the kernel timeout"); ce != nil {
			ce.Write(zap.String("session", session.ShortID(sess.ID)), zap.Duration("tcp_user_timeout", d))
		}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	h.logger.Info("session opened",
		zap.String("session", session.ShortID(sess.ID)),
		zap.String("remote_addr", sess.RemoteAddr),
		zap.String("identity", sess.Identity))
	if ce := h.logger.Check(zapcore.DebugLevel, "session id"); ce != nil {
		ce.Write(zap.String("session", session.ShortID(sess.ID)), zap.String("session_id", sess.ID))
	}

	metrics.opened.Inc()
	opts := h.streamOpts
	opts.OnKeepalive = func() {
		sess.CountKeepalive()
		metrics.keepalives.Inc()
	}
	opts.OnMessages = func(n int) { metrics.messagesOut.Add(float64(n)) }
	opts.Offload = runShallow
	stream := sse.NewStream(w, http.NewResponseController(w), opts)
	sess.SetDeliverer(stream.Deliver)
	ready = true
	return openedStream{
		sess:     sess,
		stream:   stream,
		endpoint: h.endpoint + sess.ID,
		client:   client,
	}
}

// closeStream closes the session of a stream that has ended, logs it and
// ends its upstream session.
func (h *Handler) closeStream(o openedStream, err error, r *http.Request, next caddyhttp.Handler) {
	defer h.store.clients.Release(o.client)
	defer h.store.handlers.Release(o.sess.Scope)
	o.sess.Close(closeReason(err))
	metrics.closed.WithLabelValues(o.sess.Reason()).Inc()
	h.logClosed(o.sess, o.stream, err)
	h.teardown(o.sess, r, next)
}

// logClosed writes the session's closing line.
func (h *Handler) logClosed(sess *session.Session, stream *sse.Stream, err error) {
	in, out := sess.Counts()
	fields := []zap.Field{
		zap.String("session", session.ShortID(sess.ID)),
		zap.String("remote_addr", sess.RemoteAddr),
		zap.String("identity", sess.Identity),
		zap.String("reason", sess.Reason()),
		zap.Duration("duration", time.Since(sess.Opened)),
		zap.Int64("messages_in", in),
		zap.Int64("messages_out", out),
		zap.Int("frames_sent", stream.Messages),
		zap.Int64("keepalives_sent", sess.Keepalives()),
	}
	var spin *sse.SpinError
	if errors.As(err, &spin) {
		h.logger.Error("session closed: spin guard tripped",
			append(fields, zap.Int("idle_frames", spin.Idle), zap.Int("rapid_yield_max", spin.Max),
				zap.Duration("rapid_yield_window", spin.Window))...)
		return
	}
	h.logger.Info("session closed", append(fields, zap.NamedError("cause", err))...)
}

func closeReason(err error) string {
	var spin *sse.SpinError
	switch {
	case err == nil:
		return session.ReasonShutdown // stop channel: already closed with its own reason
	case errors.Is(err, sse.ErrClientGone):
		return session.ReasonClientGone
	case errors.Is(err, sse.ErrSendTimeout):
		return session.ReasonSendTimeout
	case errors.As(err, &spin):
		return session.ReasonRapidYield
	default:
		return session.ReasonWriteError
	}
}

// teardown removes a session whose stream has ended and ends its upstream
// session, bounded by cleanup_timeout. It runs once per session, when its
// stream ends.
func (h *Handler) teardown(sess *session.Session, r *http.Request, next caddyhttp.Handler) {
	sess.Close(session.ReasonClientGone)
	h.store.Remove(sess.ID)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Duration(h.CleanupTimeout))
	defer cancel()
	if err := h.dispatcher.End(ctx, sess, r, next, h.MessagePath); err != nil {
		h.logger.Debug("ending upstream session", zap.String("session_id", sess.ID), zap.Error(err))
	}
}
