package mcpsse

// The stream's life: opening a session and its SSE response, running it,
// and closing it when it ends.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/internal/access"
	"github.com/mcpsse/caddy-mcp-sse/session"
	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// serveStream opens a session, or re-attaches to one the request proves
// it holds, and streams it until it ends. Its goroutine only waits:
// opening, writing and closing run shallow (see shallow.go).
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	var o openedStream
	runShallow(func() { o = h.openStream(w, r, next) })
	if o.stream == nil {
		return o.err
	}
	err := errStreamPanicked // what the close sees if Run panics
	defer func() { runShallow(func() { h.streamEnded(o, err, r, next) }) }()
	err = o.stream.Run(r.Context(), o.endpoint, o.att)
	return nil
}

var errStreamPanicked = errors.New("stream panicked")

// openedStream is a session whose stream is ready to run, or the error
// that refused it (its response already written).
type openedStream struct {
	sess     *session.Session
	att      *session.Attachment
	stream   *sse.Stream
	endpoint string
	err      error
}

// openStream re-attaches the request to the session it proves it holds,
// if any, and opens a new one otherwise.
func (h *Handler) openStream(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) openedStream {
	if p, ok := h.findResumable(r); ok {
		if o, ok := h.reattach(w, r, next, p); ok {
			return o
		}
	}
	if h.cluster != nil && h.resumeOn() {
		if p, ok := h.findInCluster(r); ok {
			if o, ok := h.takeOver(w, r, next, p); ok {
				return o
			}
		}
	}
	return h.openNew(w, r, next)
}

// openNew admits a new session, registers it and writes the response head.
func (h *Handler) openNew(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) openedStream {
	scope := h.site(r).Scope
	client := scope + " " + access.ClientKey(r)
	if !h.store.clients.Acquire(client, h.MaxSessionsPerClient) {
		w.Header().Set("Retry-After", "5")
		h.logger.Warn("refusing stream: per-client session limit reached",
			zap.String("client_ip", access.ClientIP(r)), zap.Int("max_sessions_per_client", h.MaxSessionsPerClient))
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
	sess.ClientKey = client
	sess.ProtocolHint = r.Header.Get(dispatch.HeaderProtocolVersion)
	sess.SetReplayLimit(max(h.ReplayBuffer, 0))
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
	if h.cluster != nil {
		if err := h.clusterOpened(sess, r, next); err != nil {
			h.logger.Warn("refusing stream: the cluster's session store is unreachable", zap.Error(err))
			w.Header().Set("Retry-After", "2")
			return openedStream{err: writeError(w, http.StatusServiceUnavailable, dispatch.CodeInternalError, errClusterDown)}
		}
	}

	stream := h.newStream(w, r, sess)
	att := sess.Attach(stream.Deliver)
	h.setResumeCookie(w, r, sess)
	h.writeStreamHead(w)

	h.logger.Info("session opened",
		zap.String("session", session.ShortID(sess.ID)),
		zap.String("remote_addr", sess.RemoteAddr),
		zap.String("identity", sess.Identity))
	if ce := h.logger.Check(zapcore.DebugLevel, "session id"); ce != nil {
		ce.Write(zap.String("session", session.ShortID(sess.ID)), zap.String("session_id", sess.ID))
	}
	metrics.opened.Inc()
	ready = true
	return openedStream{sess: sess, att: att, stream: stream, endpoint: h.endpoint + sess.ID}
}

// newStream makes the SSE stream of sess on w.
func (h *Handler) newStream(w http.ResponseWriter, r *http.Request, sess *session.Session) *sse.Stream {
	// Debug lines go through Check: their fields would otherwise be built,
	// and kept until the next collection, for every stream.
	if d := unackedTimeout(h.streamOpts); bindUnackedTimeout(r, d) {
		if ce := h.logger.Check(zapcore.DebugLevel, "stream connection fails after unacknowledged data outlives the kernel timeout"); ce != nil {
			ce.Write(zap.String("session", session.ShortID(sess.ID)), zap.Duration("tcp_user_timeout", d))
		}
	}
	opts := h.streamOpts
	opts.OnKeepalive = func() {
		sess.CountKeepalive()
		metrics.keepalives.Inc()
	}
	opts.OnMessages = func(n int) { metrics.messagesOut.Add(float64(n)) }
	opts.Offload = runShallow
	if h.resumeOn() {
		opts.IDPrefix = sess.Token() + "."
	}
	return sse.NewStream(w, http.NewResponseController(w), opts)
}

func (h *Handler) writeStreamHead(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
}

// streamEnded decides what becomes of a session whose stream has ended:
// nothing if another stream has taken it over; detached, to wait for the
// client's return, if the client went away; closed otherwise.
func (h *Handler) streamEnded(o openedStream, err error, r *http.Request, next caddyhttp.Handler) {
	if !o.att.Current() {
		// Another stream holds the session: its end, not this one's,
		// decides the session's.
		if ce := h.logger.Check(zapcore.DebugLevel, "stream taken over by another"); ce != nil {
			ce.Write(zap.String("session", session.ShortID(o.sess.ID)))
		}
		return
	}
	end := h.dispatcher.Ender(r, next, h.MessagePath)
	if h.resumeOn() && clientWentAway(err) && !caddy.Exiting() {
		sess := o.sess
		onEnd := func() { runShallow(func() { h.endSession(sess, nil, end) }) }
		if sess.Detach(o.att, time.Duration(h.ResumeWindow), onEnd) {
			if h.cluster != nil {
				h.clusterDetached(sess)
			}
			h.logger.Info("session detached: waiting for the client to re-attach",
				zap.String("session", session.ShortID(sess.ID)),
				zap.String("identity", sess.Identity),
				zap.Duration("resume_window", time.Duration(h.ResumeWindow)),
				zap.NamedError("cause", err))
			return
		}
	}
	o.sess.Close(closeReason(err))
	h.endSession(o.sess, err, end)
}

// clientWentAway reports whether a stream ended because its client left
// or stopped reading (which a client cut off by a proxy looks like),
// rather than because the session was closed or misbehaved.
func clientWentAway(err error) bool {
	var spin *sse.SpinError
	return err != nil && err != errStreamPanicked && !errors.As(err, &spin)
}

// endSession does what is left once a closed session is over, once: it
// gives back its places, logs its end and ends its upstream session.
func (h *Handler) endSession(sess *session.Session, err error, end func(context.Context, *session.Session) error) {
	if !sess.ClaimEnd() {
		return
	}
	h.store.Remove(sess.ID)
	h.store.clients.Release(sess.ClientKey)
	h.store.handlers.Release(sess.Scope)
	metrics.closed.WithLabelValues(sess.Reason()).Inc()
	h.logClosed(sess, err)
	if h.cluster != nil && !h.clusterEnded(sess) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(h.CleanupTimeout))
	defer cancel()
	if err := end(ctx, sess); err != nil {
		h.logger.Debug("ending upstream session", zap.String("session_id", sess.ID), zap.Error(err))
	}
}

// logClosed writes the session's closing line.
func (h *Handler) logClosed(sess *session.Session, err error) {
	in, out := sess.Counts()
	fields := []zap.Field{
		zap.String("session", session.ShortID(sess.ID)),
		zap.String("remote_addr", sess.RemoteAddr),
		zap.String("identity", sess.Identity),
		zap.String("reason", sess.Reason()),
		zap.Duration("duration", time.Since(sess.Opened)),
		zap.Int64("messages_in", in),
		zap.Int64("messages_out", out),
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
