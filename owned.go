package mcpsse

// A session this instance owns in cluster mode: it dispatches what waits
// in the session's inbox, in order, and deletes each entry once the
// answers it produced have been flushed to the client, so that an
// instance taking the session over dispatches again exactly what did not
// reach the client.

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// drainBatch is how many inbox entries one read takes.
const drainBatch = 64

type ownedSession struct {
	m    *clusterMember
	h    *Handler // the handler whose stream opened or took the session
	sess *session.Session
	// epoch is the ownership the cluster gave this instance; every write
	// to the cluster carries it.
	epoch atomic.Int64
	route atomic.Pointer[streamRoute]

	// retakeThrough is the newest entry the inbox held when this
	// instance took the session over: it and those before it were
	// dispatched by the old owner, maybe, and go again as retries.
	retakeThrough string

	// seen are the nonces of POSTs dispatched lately, to dispatch each
	// once (see cluster.Posted.Nonce); its own lock, since offer
	// dispatches under mu.
	seen seenNonces

	// telling is set while tell writes; tellAgain asks it to write again.
	tellMu    sync.Mutex
	telling   bool
	tellAgain bool

	mu       sync.Mutex
	cursor   string // the last inbox entry dispatched
	draining bool
	again    bool
	waiting  []pendingAck // dispatched, answers not yet flushed
	ready    []string     // entries to delete from the inbox
	acking   bool
	released bool
}

// streamRoute is where dispatches of carried POSTs go: the context of the
// session's latest stream request (its server, its values) and the
// handlers after mcp_sse on its route.
type streamRoute struct {
	ctx  context.Context
	next caddyhttp.Handler
}

type pendingAck struct {
	entry string
	mark  uint64 // done once FlushedSeq reaches it
}

// own makes sess this instance's in the cluster at epoch: register says
// whether to write it there (a new session) or whether a takeover already
// has.
func (m *clusterMember) own(h *Handler, sess *session.Session, r *http.Request, next caddyhttp.Handler, epoch int64, register bool) (*ownedSession, error) {
	o := &ownedSession{m: m, h: h, sess: sess}
	o.epoch.Store(epoch)
	o.setRoute(r, next)
	if register {
		ctx, cancel := context.WithTimeout(r.Context(), m.node.Lease())
		defer cancel()
		err := m.node.Register(ctx, o.state())
		m.noteRedis(err)
		if err != nil {
			return nil, err
		}
	}
	sess.OnFlushed(o.flushed)
	m.owned.Store(sess.ID, o)
	return o, nil
}

func (o *ownedSession) setRoute(r *http.Request, next caddyhttp.Handler) {
	o.route.Store(&streamRoute{ctx: context.WithoutCancel(r.Context()), next: next})
}

// state is what the cluster is told of the session at each renewal.
func (o *ownedSession) state() cluster.Owned {
	s := o.sess
	up, proto := s.Upstream()
	return cluster.Owned{
		ID: s.ID, Epoch: o.epoch.Load(), TTL: time.Duration(o.h.ResumeWindow),
		Identity: s.Identity, Scope: s.Scope, RemoteAddr: s.RemoteAddr, Hint: s.ProtocolHint,
		UpstreamID: up, Protocol: proto, Initialized: s.Initialized(),
		Token: s.Token(), Detached: s.Detached(), Opened: s.Opened,
		Bridge: dispatch.BridgeSnapshot(s),
	}
}

// tell writes the session's state to the cluster now, not at the next
// renewal: a detached session may be taken over at once. One write runs
// at a time, and a tell during it makes it write again, the state read
// afresh: two writes racing could leave the older state in Redis (a
// session told attached after it was told detached, which no stream
// could then take over).
func (o *ownedSession) tell() {
	o.tellMu.Lock()
	if o.telling {
		o.tellAgain = true
		o.tellMu.Unlock()
		return
	}
	o.telling = true
	o.tellMu.Unlock()
	go func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), o.m.node.Lease()/3)
			fenced, err := o.m.node.Refresh(ctx, []cluster.Owned{o.state()})
			cancel()
			o.m.noteRedis(err)
			if len(fenced) > 0 {
				o.release("fenced: another instance owns the session now")
			}
			o.tellMu.Lock()
			if !o.tellAgain {
				o.telling = false
				o.tellMu.Unlock()
				return
			}
			o.tellAgain = false
			o.tellMu.Unlock()
		}
	}()
}

// drain dispatches what waits in the inbox after the cursor, in order.
// One drain runs at a time; a call while one runs makes it look again.
func (o *ownedSession) drain() {
	o.mu.Lock()
	if o.draining || o.released {
		o.again = true
		o.mu.Unlock()
		return
	}
	o.draining = true
	o.mu.Unlock()
	// Every entry a POST dispatched here before now could have left in
	// the inbox is in it by now: once this drain has read the inbox to
	// its end, the nonces of those POSTs are forgotten.
	seenMark := o.seen.mark()
	for {
		o.mu.Lock()
		cursor := o.cursor
		o.mu.Unlock()
		entries, err := o.m.node.Pending(o.sess.Context(), o.sess.ID, cursor, drainBatch)
		if err != nil {
			o.mu.Lock()
			o.draining = false
			o.mu.Unlock()
			if o.sess.Closed() {
				return
			}
			o.m.noteRedis(err)
			time.AfterFunc(time.Second, o.drain) // Redis back: the subscription's return drains too
			return
		}
		for _, e := range entries {
			o.dispatch(e)
			o.mu.Lock()
			o.cursor = e.ID
			o.mu.Unlock()
		}
		if len(entries) == drainBatch {
			continue
		}
		o.mu.Lock()
		if o.again && !o.released {
			o.again = false
			o.mu.Unlock()
			continue
		}
		o.draining, o.again = false, false
		o.mu.Unlock()
		o.seen.forgetHere(seenMark)
		return
	}
}

// dispatchedHere notes a POST dispatched without the inbox, whose entry
// Redis may hold all the same.
func (o *ownedSession) dispatchedHere(nonce string) { o.seen.here(nonce) }

// offer dispatches the inbox entry id, posted after prev, straight from
// its doorbell (or its local POST) when it is next in order and no drain
// runs; otherwise the inbox is read. Entries already dispatched are
// skipped by the drain, which reads after the cursor.
func (o *ownedSession) offer(prev, id string, p *cluster.Posted) {
	o.mu.Lock()
	if o.released {
		o.mu.Unlock()
		return
	}
	if p == nil || o.draining || prev != o.cursor {
		o.mu.Unlock()
		go o.drain() // it reads Redis: not on the subscription's goroutine
		return
	}
	o.cursor = id
	// Under the lock, so that offers and drains hand entries to the
	// dispatcher in inbox order; dispatching does not block.
	o.dispatch(cluster.Entry{ID: id, Posted: *p})
	o.mu.Unlock()
}

// dispatch hands one inbox entry's messages to the upstream, as the POST
// that carried them would have on the instance that received it.
func (o *ownedSession) dispatch(e cluster.Entry) {
	if !o.seen.first(e.Nonce) {
		o.m.logger.Debug("skipping an inbox entry already dispatched", zap.String("session", session.ShortID(o.sess.ID)), zap.String("entry", e.ID))
		go o.entryDone(e.ID) // offer holds o.mu
		return
	}
	msgs, err := dispatch.Parse(e.Body)
	if err != nil || len(msgs) == 0 {
		o.m.logger.Warn("dropping an inbox entry that is no message", zap.String("session", session.ShortID(o.sess.ID)), zap.String("entry", e.ID))
		go o.entryDone(e.ID) // offer holds o.mu
		return
	}
	if e.From != o.m.node.Instance() {
		metrics.clusterMessages.WithLabelValues("received").Add(float64(len(msgs)))
		metrics.clusterLatency.Observe(e.Since().Seconds())
	}
	route := o.route.Load()
	post := dispatch.CarriedPost(route.ctx, o.h.MessagePath, e.Header, e.Host, e.RemoteAddr, e.TLS, e.Values, e.Vars)
	metrics.messagesIn.Add(float64(len(msgs)))
	retry := o.retakeThrough != "" && cluster.EntryBefore(e.ID, o.retakeThrough)
	// The inbox admitted the messages against max_inflight; they are
	// counted here too while they run, as a POST's on one instance, so
	// that a POST dispatched here while Redis is unreachable sees them.
	work := 0
	for i := range msgs {
		if msgs[i].Method != "" {
			work++
		}
	}
	o.sess.Admit(work, len(msgs)-work, 0)
	remaining := new(atomic.Int32)
	remaining.Store(int32(len(msgs)))
	for _, msg := range msgs {
		o.sess.CountIn()
		end := &entryEnd{o: o, entry: e.ID, remaining: remaining, response: msg.Method == ""}
		o.h.dispatcher.Go(dispatch.Call{Session: o.sess, Message: msg, Post: post, Next: route.next, End: end, Retry: retry})
	}
}

// entryEnd is what one dispatch of an inbox entry's messages tells of its
// end (a dispatch.CallEnd): the last of them marks the entry done.
type entryEnd struct {
	o         *ownedSession
	entry     string
	remaining *atomic.Int32
	response  bool
}

// LetGo does nothing: the entry's bytes are the inbox's, held until it
// is done, not a POST's counted towards max_pending_bytes.
func (e *entryEnd) LetGo() {}

func (e *entryEnd) Done() {
	e.o.sess.Finished(e.response)
	if e.remaining.Add(-1) == 0 {
		e.o.entryDone(e.entry)
	}
}

// entryDone notes that an entry's dispatches have ended: it is deleted
// from the inbox once what they sent the client has been flushed.
func (o *ownedSession) entryDone(entry string) {
	mark := o.sess.OutMark()
	o.mu.Lock()
	if o.sess.FlushedSeq() >= mark {
		o.ready = append(o.ready, entry)
	} else {
		o.waiting = append(o.waiting, pendingAck{entry, mark})
	}
	start := o.startAck()
	o.mu.Unlock()
	if start {
		o.m.acks.add(o)
	}
}

// flushed is the session's OnFlushed hook.
func (o *ownedSession) flushed(seq uint64) {
	o.mu.Lock()
	if len(o.waiting) == 0 {
		o.mu.Unlock()
		return
	}
	keep := o.waiting[:0]
	for _, p := range o.waiting {
		if p.mark <= seq {
			o.ready = append(o.ready, p.entry)
		} else {
			keep = append(keep, p)
		}
	}
	o.waiting = keep
	start := o.startAck()
	o.mu.Unlock()
	if start {
		o.m.acks.add(o)
	}
}

// startAck reports whether the caller is to hand the session to the
// acker (see acker.go); o.mu is held.
func (o *ownedSession) startAck() bool {
	if len(o.ready) == 0 || o.acking || o.released {
		return false
	}
	o.acking = true
	return true
}

// release lets go of the session: another instance owns it now. The
// local copy closes as moved, which ends nothing upstream.
func (o *ownedSession) release(why string) {
	o.mu.Lock()
	if o.released {
		o.mu.Unlock()
		return
	}
	o.released = true
	o.mu.Unlock()
	o.m.owned.CompareAndDelete(o.sess.ID, o)
	o.m.logger.Info("session moved to another instance", zap.String("session", session.ShortID(o.sess.ID)), zap.String("why", why))
	o.sess.Close(session.ReasonMoved)
}

// seenNonces are the nonces of a session's POSTs dispatched lately: the
// last few from the inbox (a write retried after its reply was lost adds
// the entry again, right after the first), and those dispatched here
// without the inbox, until a drain has read past where their entries
// could be.
type seenNonces struct {
	mu     sync.Mutex
	recent []string // ring of the last seenRecent from the inbox
	next   int
	hereAt map[string]uint64 // nonce -> the mark when it was noted
	marks  uint64
}

const (
	seenRecent = 32
	// seenHereMax bounds the POSTs noted as dispatched here: a Redis
	// down for long forgets the oldest.
	seenHereMax = 4096
)

// first reports whether nonce is seen for the first time, and notes it.
// An entry without a nonce is always a first.
func (s *seenNonces) first(nonce string) bool {
	if nonce == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.recent {
		if n == nonce {
			return false
		}
	}
	_, dispatched := s.hereAt[nonce]
	delete(s.hereAt, nonce)
	if len(s.recent) < seenRecent {
		s.recent = append(s.recent, nonce)
	} else {
		s.recent[s.next] = nonce
		s.next = (s.next + 1) % seenRecent
	}
	return !dispatched
}

// here notes a POST dispatched without the inbox.
func (s *seenNonces) here(nonce string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hereAt == nil {
		s.hereAt = map[string]uint64{}
	}
	if len(s.hereAt) >= seenHereMax {
		oldest, at := "", uint64(0)
		for n, m := range s.hereAt {
			if oldest == "" || m < at {
				oldest, at = n, m
			}
		}
		delete(s.hereAt, oldest)
	}
	s.marks++
	s.hereAt[nonce] = s.marks
}

// mark is the newest POST noted as dispatched here.
func (s *seenNonces) mark() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marks
}

// forgetHere forgets the POSTs dispatched here up to mark.
func (s *seenNonces) forgetHere(mark uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, m := range s.hereAt {
		if m <= mark {
			delete(s.hereAt, n)
		}
	}
}
