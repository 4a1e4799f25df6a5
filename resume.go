package mcpsse

// Re-attaching: a GET that proves which session it was (Last-Event-ID, the
// resume cookie, or the authenticated identity) gets that session back,
// with the frames it missed, instead of a new one.

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/internal/access"
	"github.com/mcpsse/caddy-mcp-sse/session"
	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// The cookie that carries a session's resume token. On https it has the
// __Host- prefix: a browser takes such a cookie only with Secure, Path /
// and no Domain, so a sibling subdomain (which may set cookies for the
// parent domain) cannot plant one that this host would read. Plain http
// keeps the bare name, Path the SSE path: browsers refuse __Host- without
// Secure, and Secure without https.
const (
	resumeCookie       = "mcp_sse_resume"
	resumeCookieSecure = "__Host-" + resumeCookie
)

// resumeCookieName is the name of the resume cookie on r's scheme; a GET
// re-attaches by that name only, so that on https the bare name, which
// any sibling subdomain can set, proves nothing.
func resumeCookieName(r *http.Request) string {
	if access.RequestScheme(r) == "https" {
		return resumeCookieSecure
	}
	return resumeCookie
}

// Ways a stream re-attaches, as metrics and logs name them.
const (
	viaLastEventID = "last_event_id"
	viaCookie      = "cookie"
	viaIdentity    = "identity"
)

// resumeOn reports whether sessions outlive their streams.
func (h *Handler) resumeOn() bool { return h.ResumeWindow > 0 }

// resumeProof is a session a GET proved it holds, and what it has seen.
type resumeProof struct {
	sess *session.Session
	via  string
	// lastSeen is the Last-Event-ID's sequence number; without one, the
	// session's journal says what the client certainly missed.
	lastSeen    uint64
	hasLastSeen bool
}

// findResumable returns the session the request proves it holds. Proof is
// the resume token (in Last-Event-ID or the cookie), which travels only
// on the stream, never the session id, which every POST URL shows; or,
// for an authenticated client reconnecting (MCP-Protocol-Version set),
// its identity when that owns exactly one detached session here. A
// session re-attaches only to its own identity and handler. Anything
// else proves nothing, and the request gets a new session.
func (h *Handler) findResumable(r *http.Request) (resumeProof, bool) {
	if !h.resumeOn() {
		return resumeProof{}, false
	}
	scope := h.site(r).Scope
	who := h.identity(r)
	owned := func(s *session.Session) bool {
		return s.Scope == scope && s.Identity == who && !s.Closed()
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		token, seqText, _ := strings.Cut(id, ".")
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if s, ok := h.store.ByToken(token); ok && err == nil && owned(s) {
			if _, _, known := s.Replay(seq); known {
				return resumeProof{sess: s, via: viaLastEventID, lastSeen: seq, hasLastSeen: true}, true
			}
		}
		h.refused(r, viaLastEventID)
	}
	if h.ResumeCookie == nil || *h.ResumeCookie {
		if c, err := r.Cookie(resumeCookieName(r)); err == nil && c.Value != "" {
			// A cookie comes with every GET of its browser, a second tab's
			// too: it re-attaches only a session no stream holds.
			if s, ok := h.store.ByToken(c.Value); ok && owned(s) && s.Detached() {
				return resumeProof{sess: s, via: viaCookie}, true
			}
			h.refused(r, viaCookie)
		}
	}
	if who != "" && r.Header.Get(dispatch.HeaderProtocolVersion) != "" {
		var found *session.Session
		n := 0
		h.store.Range(func(s *session.Session) bool {
			if owned(s) && s.Detached() {
				found = s
				n++
			}
			return n < 2
		})
		if n == 1 {
			return resumeProof{sess: found, via: viaIdentity}, true
		}
	}
	return resumeProof{}, false
}

// setResumeCookie sets the cookie that carries the session's resume
// token, if the handler uses one.
func (h *Handler) setResumeCookie(w http.ResponseWriter, r *http.Request, sess *session.Session) {
	if !h.resumeOn() || (h.ResumeCookie != nil && !*h.ResumeCookie) {
		return
	}
	c := &http.Cookie{
		Name: resumeCookie, Value: sess.Token(), Path: h.SSEPath,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	}
	if name := resumeCookieName(r); name == resumeCookieSecure {
		c.Name, c.Path, c.Secure = name, "/", true
	}
	http.SetCookie(w, c)
}

// refused logs a proof that proved nothing, without what it carried.
func (h *Handler) refused(r *http.Request, via string) {
	if ce := h.logger.Check(zapcore.DebugLevel, "re-attach refused: the proof names no session of this client here"); ce != nil {
		ce.Write(zap.String("via", via), zap.String("remote_addr", r.RemoteAddr))
	}
}

// reattach makes the request's stream the proved session's: its first
// frame is the endpoint with the same session id, then what the client
// has not received, then live traffic. It fails (and the request gets a
// new session) if the session closed or expired meanwhile.
func (h *Handler) reattach(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, p resumeProof) (openedStream, bool) {
	sess := p.sess
	// The proof is spent: the token it carried travelled in a header that
	// access logs record. The stream's frame ids and cookie carry a new
	// one. In cluster mode it is spent in the cluster first: a re-attach
	// that could not spend it there fails, or the old token would still
	// take the session over on another instance.
	old, token := sess.Token(), session.NewToken()
	if h.cluster != nil && !h.clusterRetoken(sess, r, old, token) {
		return openedStream{}, false
	}
	if !sess.ReplaceToken(old, token) {
		return openedStream{}, false // another re-attach spent it first
	}
	h.store.Retoken(sess, old)
	stream := h.newStream(w, r, sess)
	att := sess.Attach(stream.Deliver)
	if att == nil {
		return openedStream{}, false
	}
	if h.cluster != nil {
		h.clusterReattached(sess, r, next)
	}
	var frames []session.Entry
	var lost uint64
	seen := p.lastSeen
	if p.hasLastSeen {
		frames, lost, _ = sess.Replay(seen)
	} else {
		seen, frames = sess.Unflushed()
	}
	resumed := make([]sse.Frame, len(frames))
	for i, f := range frames {
		resumed[i] = sse.Frame{Seq: f.Seq, Data: f.Data}
	}
	stream.Resume(seen, resumed)
	setSessionPlaceholder(r, sess.ID)
	h.setResumeCookie(w, r, sess)
	h.writeStreamHead(w)

	metrics.reattached.WithLabelValues(p.via).Inc()
	_, _, n := sess.State()
	fields := []zap.Field{
		zap.String("session", session.ShortID(sess.ID)),
		zap.String("via", p.via),
		zap.String("remote_addr", r.RemoteAddr),
		zap.String("identity", sess.Identity),
		zap.Int("replayed", len(resumed)),
		zap.Int("reattaches", n),
	}
	if lost > 0 {
		h.logger.Warn("session re-attached: frames after the client's Last-Event-ID are no longer held, and are lost to it",
			append(fields, zap.Uint64("lost", lost), zap.Int("replay_buffer", h.ReplayBuffer))...)
	} else {
		h.logger.Info("session re-attached", fields...)
	}
	return openedStream{sess: sess, att: att, stream: stream, endpoint: h.endpoint + sess.ID}, true
}
