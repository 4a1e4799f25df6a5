package mcpsse

// The handler in cluster mode: POSTs for sessions owned anywhere, streams
// that take a session over from another instance, and what the cluster is
// told as a session opens, detaches, re-attaches and ends.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/internal/access"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// errClusterDown is what clients are told while Redis is unreachable.
const errClusterDown = "the cluster's session store (Redis) is unreachable; retry later"

// postToCluster takes a POST in cluster mode: checked as without a
// cluster against the session's metadata, it is appended to the
// session's inbox, which its owner (this instance or another) dispatches
// in order. When Redis is unreachable and the session is held here, it is
// dispatched here, as without a cluster.
func (h *Handler) postToCluster(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, id string) error {
	m := h.cluster
	scope := h.site(r).Scope
	who := h.identity(r)
	local, _ := h.store.Get(id)
	if local != nil {
		if o, ok := m.ownedSession(id); !ok || o.sess != local || local.Closed() {
			local = nil // a copy let go of, or ended: the cluster knows better
		}
	}
	var owner knownSession
	if local != nil {
		owner = knownSession{identity: local.Identity, scope: local.Scope}
	} else {
		var err error
		owner, err = m.lookupKnown(r.Context(), id)
		switch {
		case errors.Is(err, cluster.ErrGone):
			return refuseUnread(w, r, http.StatusNotFound, dispatch.CodeSessionNotFound, "session not found: open a new stream")
		case err != nil:
			return h.clusterDown(w, err)
		}
	}
	if owner.scope != scope {
		return refuseUnread(w, r, http.StatusNotFound, dispatch.CodeSessionNotFound, "session not found: open a new stream")
	}
	if who != owner.identity {
		h.logger.Warn("refusing message: identity does not own the session",
			zap.String("session", session.ShortID(id)), zap.String("identity", who),
			zap.String("owner", owner.identity), zap.String("remote_addr", r.RemoteAddr))
		return refuseUnread(w, r, http.StatusForbidden, dispatch.CodeInvalidRequest, "this session belongs to another identity")
	}

	client := scope + " " + access.ClientKey(r)
	if local != nil {
		client = local.ClientKey
	}
	post := new(postHold)
	body, hold, err := h.readBody(w, r, client, &post.body)
	if hold == nil {
		return err
	}
	msgs, work, refused := h.parseBody(w, body, post.one[:0])
	if msgs == nil {
		hold.Release()
		return refused
	}
	values, vars := dispatch.PostValues(r)
	p := &cluster.Posted{
		Body: body, Header: dispatch.CarriedHeader(r, h.ForwardHeaders), Host: r.Host, RemoteAddr: r.RemoteAddr,
		TLS: r.TLS != nil, Values: values, Vars: vars, At: time.Now().UnixNano(), Nonce: newNonce(),
	}
	load := cluster.Load{Work: work, Responses: len(msgs) - work, Bytes: int64(len(body)),
		MaxInflight: h.MaxInflight, MaxBytes: h.inboxBytes()}
	res, err := m.node.Post(r.Context(), id, who, scope, p, load)
	switch {
	case err == nil:
	case errors.Is(err, cluster.ErrGone):
		hold.Release()
		m.known.Delete(id)
		return writeError(w, http.StatusNotFound, dispatch.CodeSessionNotFound, "session not found: open a new stream")
	case errors.Is(err, cluster.ErrForbidden):
		hold.Release()
		return writeError(w, http.StatusForbidden, dispatch.CodeInvalidRequest, "this session belongs to another identity")
	case errors.Is(err, cluster.ErrInboxFull):
		hold.Release()
		metrics.refused.WithLabelValues("max_inflight").Inc()
		w.Header().Set("Retry-After", "1")
		return writeError(w, http.StatusTooManyRequests, dispatch.CodeServerBusy,
			fmt.Sprintf("too many requests in flight on this session (max_inflight %d); retry when some are answered", h.MaxInflight))
	case errors.Is(err, cluster.ErrInboxBytes):
		hold.Release()
		metrics.refused.WithLabelValues("max_pending_bytes").Inc()
		w.Header().Set("Retry-After", "1")
		return writeError(w, http.StatusServiceUnavailable, dispatch.CodeServerBusy,
			"the session holds too many bytes of messages in flight; retry later")
	default:
		m.noteRedis(err)
		if local != nil {
			// Held here: dispatched here, as without a cluster. Redis
			// may have taken the entry all the same (the reply was lost,
			// not the write): the owner skips it when it reads it.
			if o, ok := m.ownedSession(id); ok && o.sess == local {
				o.dispatchedHere(p.Nonce)
			}
			return h.dispatchHere(w, r, next, local, msgs, work, post)
		}
		hold.Release()
		return h.clusterDown(w, err)
	}
	// The body's bytes stay counted against max_pending_bytes until its
	// inbox entry is done, on whichever instance owns the session.
	clear(msgs) // held on with post, they would keep the body
	m.hold(id, res.Entry, hold.Release)
	if res.Owner == m.node.Instance() {
		if o, ok := m.ownedSession(id); ok {
			o.offer(res.Prev, res.Entry, p)
		}
	} else {
		metrics.clusterMessages.WithLabelValues("sent").Add(float64(len(msgs)))
		if !res.Listening {
			h.logger.Debug("message held for a takeover: the session's owner is gone",
				zap.String("session", session.ShortID(id)), zap.String("owner", res.Owner))
		}
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// newNonce names one POST in the cluster.
func newNonce() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// inboxBytes bounds the bytes of bodies one session's inbox holds: what
// one client may hold of max_pending_bytes on one instance.
func (h *Handler) inboxBytes() int64 {
	if h.MaxPendingBytes <= 0 {
		return 0
	}
	return max(h.MaxPendingBytes/4, h.MaxMessageSize)
}

func (h *Handler) clusterDown(w http.ResponseWriter, err error) error {
	h.cluster.noteRedis(err)
	w.Header().Set("Retry-After", "2")
	return writeError(w, http.StatusServiceUnavailable, dispatch.CodeInternalError, errClusterDown)
}

// lookupKnown returns whom session id belongs to, from the cache or the
// cluster.
func (m *clusterMember) lookupKnown(ctx context.Context, id string) (knownSession, error) {
	if v, ok := m.known.Load(id); ok {
		if k := v.(knownSession); time.Now().Before(k.until) {
			return k, nil
		}
	}
	meta, err := m.node.Lookup(ctx, id)
	if err != nil {
		return knownSession{}, err
	}
	k := knownSession{identity: meta.Identity, scope: meta.Scope, until: time.Now().Add(knownFor)}
	m.known.Store(id, k)
	return k, nil
}

// clusterProof is a session elsewhere in the cluster that a GET proved it
// holds.
type clusterProof struct {
	meta  cluster.Meta
	via   string
	token string // the token proved, "" for an identity
}

// findInCluster is findResumable for sessions this instance does not
// hold: the same proofs, checked against the cluster's metadata. A
// cookie or an identity re-attaches only a session no stream holds: one
// its owner marked detached, or whose owner is gone.
func (h *Handler) findInCluster(r *http.Request) (clusterProof, bool) {
	m := h.cluster
	scope := h.site(r).Scope
	who := h.identity(r)
	ctx, cancel := context.WithTimeout(r.Context(), 2*m.node.Lease())
	defer cancel()
	check := func(id, token, via string, needDetached bool) (clusterProof, bool) {
		if o, ok := m.ownedSession(id); ok && !o.sess.Closed() {
			return clusterProof{}, false // held here: findResumable's
		}
		meta, err := m.node.Lookup(ctx, id)
		if errors.Is(err, cluster.ErrGone) && via == viaIdentity {
			// Its owner died and its metadata lapsed: the identity's
			// index forgets it, so that it does not grow with such ends.
			_ = m.node.ForgetIdentity(ctx, scope, who, id)
		}
		if err != nil || meta.Scope != scope || meta.Identity != who {
			return clusterProof{}, false
		}
		if token != "" && meta.TokenHash != cluster.Hash(token) {
			return clusterProof{}, false
		}
		if needDetached && !meta.Detached && meta.LeaseLeft > 0 {
			if alive, err := m.node.Listening(ctx, meta.Owner); err != nil || alive {
				return clusterProof{}, false
			}
		}
		return clusterProof{meta: meta, via: via, token: token}, true
	}
	if lid := r.Header.Get("Last-Event-ID"); lid != "" {
		token, seqText, _ := strings.Cut(lid, ".")
		if _, err := strconv.ParseUint(seqText, 10, 64); err == nil && token != "" {
			if id, err := m.node.ByToken(ctx, token); err == nil {
				if p, ok := check(id, token, viaLastEventID, false); ok {
					return p, true
				}
			}
		}
	}
	if h.ResumeCookie == nil || *h.ResumeCookie {
		if c, err := r.Cookie(resumeCookieName(r)); err == nil && c.Value != "" {
			if id, err := m.node.ByToken(ctx, c.Value); err == nil {
				if p, ok := check(id, c.Value, viaCookie, true); ok {
					return p, true
				}
			}
		}
	}
	if who != "" && r.Header.Get(dispatch.HeaderProtocolVersion) != "" {
		ids, err := m.node.ByIdentity(ctx, scope, who)
		if err != nil {
			return clusterProof{}, false
		}
		var found []clusterProof
		for _, id := range ids {
			if p, ok := check(id, "", viaIdentity, true); ok {
				found = append(found, p)
				if len(found) > 1 {
					break
				}
			}
		}
		if len(found) == 1 {
			return found[0], true
		}
	}
	return clusterProof{}, false
}

// takeOver makes this instance the owner of the session p proved, and the
// request's stream its stream: the same session id and upstream session,
// and whatever waits in its inbox (messages the old owner had not
// finished, answers it had not flushed) dispatched again here. It fails
// (and the request gets a new session) if the session moved on meanwhile.
func (h *Handler) takeOver(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, p clusterProof) (openedStream, bool) {
	m := h.cluster
	meta := p.meta
	scope := h.site(r).Scope
	client := scope + " " + access.ClientKey(r)
	if !h.store.clients.Acquire(client, h.MaxSessionsPerClient) {
		return openedStream{}, false
	}
	if !h.store.handlers.Acquire(scope, h.MaxSessions) {
		h.store.clients.Release(client)
		return openedStream{}, false
	}
	sess := session.New(meta.ID, r.RemoteAddr, h.QueueSize)
	sess.Identity = meta.Identity
	sess.Scope = meta.Scope
	sess.ClientKey = client
	sess.ProtocolHint = meta.Hint
	sess.SetReplayLimit(max(h.ReplayBuffer, 0))
	sess.SetUpstreamID(meta.UpstreamID)
	sess.SetProtocolVersion(meta.Protocol)
	if meta.Initialized {
		sess.SetInitialized(true)
		sess.ClaimBridgeInitialize()
	}
	if meta.Bridge != "" {
		// A session on the sessionless path: what its client declared
		// moves with it (its rounds in progress do not).
		if err := dispatch.RestoreBridge(sess, meta.Bridge); err != nil {
			h.logger.Warn("restoring the sessionless bridge state of a session taken over", zap.String("session", session.ShortID(sess.ID)), zap.Error(err))
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*m.node.Lease())
	epoch, err := m.node.Takeover(ctx, meta, p.token, sess.Token())
	cancel()
	if err != nil {
		m.noteRedis(err)
		h.store.handlers.Release(scope)
		h.store.clients.Release(client)
		return openedStream{}, false
	}
	if old, ok := h.store.Get(meta.ID); ok {
		// A copy this instance let go of earlier: the cluster's is newer.
		old.Close(session.ReasonMoved)
		h.store.Remove(meta.ID)
	}
	_ = h.store.Add(sess, 0)
	o, _ := m.own(h, sess, r, next, epoch, false)
	ctx, cancel = context.WithTimeout(r.Context(), m.node.Lease())
	o.retakeThrough, _ = m.node.LastEntry(ctx, sess.ID)
	cancel()
	setSessionPlaceholder(r, sess.ID)

	stream := h.newStream(w, r, sess)
	att := sess.Attach(stream.Deliver)
	stream.Resume(0, nil)
	h.setResumeCookie(w, r, sess)
	h.writeStreamHead(w)

	if meta.Owner != m.node.Instance() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), m.node.Lease())
			defer cancel()
			_, _ = m.node.Send(ctx, meta.Owner, cluster.Control{Op: cluster.OpReleased, ID: meta.ID, Epoch: epoch})
		}()
	}
	h.dispatcher.ResumeListening(dispatch.Call{Session: sess, Post: r, Next: next})
	go o.drain()

	metrics.reattached.WithLabelValues(p.via).Inc()
	metrics.takeovers.Inc()
	h.logger.Info("session taken over from another instance",
		zap.String("session", session.ShortID(sess.ID)),
		zap.String("via", p.via),
		zap.String("from", meta.Owner),
		zap.Int64("epoch", epoch),
		zap.String("remote_addr", r.RemoteAddr),
		zap.String("identity", sess.Identity))
	return openedStream{sess: sess, att: att, stream: stream, endpoint: h.endpoint + sess.ID}, true
}

// clusterOpened registers a new session in the cluster.
func (h *Handler) clusterOpened(sess *session.Session, r *http.Request, next caddyhttp.Handler) error {
	_, err := h.cluster.own(h, sess, r, next, 1, true)
	return err
}

// clusterRetoken spends the resume token old of sess, held here, in the
// cluster: token becomes its token there. It reports whether it did; if
// not, the re-attach fails (and the request gets a new session, or 503
// while Redis is unreachable), and old stays the session's token, here
// and in the cluster, for the client to try again.
func (h *Handler) clusterRetoken(sess *session.Session, r *http.Request, old, token string) bool {
	m := h.cluster
	o, ok := m.ownedSession(sess.ID)
	if !ok || o.sess != sess {
		return false // let go of: the cluster's copy is elsewhere
	}
	st := o.state()
	st.Token, st.Detached = token, false
	ctx, cancel := context.WithTimeout(r.Context(), m.node.Lease()/3)
	defer cancel()
	err := m.node.Retoken(ctx, st, old)
	if errors.Is(err, cluster.ErrGone) {
		// Redis lost the session (a restart without its data): held
		// here, it is registered again, with the new token.
		err = m.node.Register(ctx, st)
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, cluster.ErrFenced):
		o.release("fenced: another instance owns the session now")
	case errors.Is(err, cluster.ErrSpent):
	default:
		m.noteRedis(err)
	}
	h.logger.Warn("re-attach refused: the cluster could not spend its resume token",
		zap.String("session", session.ShortID(sess.ID)), zap.String("remote_addr", r.RemoteAddr), zap.Error(err))
	return false
}

// clusterReattached gives the session the new stream's route for what it
// dispatches.
func (h *Handler) clusterReattached(sess *session.Session, r *http.Request, next caddyhttp.Handler) {
	if o, ok := h.cluster.ownedSession(sess.ID); ok && o.sess == sess {
		o.setRoute(r, next)
	}
}

// clusterStateChanged writes a session's state to the cluster at once
// when it changed (dispatch.Dispatcher.StateChanged); a handler not in
// cluster mode has nothing to tell.
func (h *Handler) clusterStateChanged(sess *session.Session) {
	if h.cluster == nil {
		return
	}
	if o, ok := h.cluster.ownedSession(sess.ID); ok && o.sess == sess {
		o.tell()
	}
}

// clusterDetached tells the cluster at once that no stream holds sess, so
// that its client may re-attach anywhere.
func (h *Handler) clusterDetached(sess *session.Session) {
	if o, ok := h.cluster.ownedSession(sess.ID); ok && o.sess == sess {
		o.tell()
	}
}

// clusterEnded removes an ended session from the cluster, and reports
// whether its upstream session is to be ended too. A session that moved
// lives on elsewhere; one this instance held when it stopped stays in the
// cluster for another instance to take over (its lease runs out, and its
// client re-attaches through the balancer).
func (h *Handler) clusterEnded(sess *session.Session) (endUpstream bool) {
	switch sess.Reason() {
	case session.ReasonMoved:
		return false
	case session.ReasonShutdown:
		return false
	}
	o, ok := h.cluster.ownedSession(sess.ID)
	if !ok || o.sess != sess {
		return true
	}
	h.cluster.owned.CompareAndDelete(sess.ID, o)
	ctx, cancel := context.WithTimeout(context.Background(), h.cluster.node.Lease()/3)
	defer cancel()
	err := h.cluster.node.Remove(ctx, o.state())
	if errors.Is(err, cluster.ErrFenced) {
		return false // another instance took it over meanwhile: it lives on there
	}
	h.cluster.noteRedis(err)
	return true
}
