package session

// A session outlives its stream: when the client goes away the session is
// detached for a while, keeping its queue, journal and upstream state,
// and a new stream that proves it is the same client attaches to it.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"time"
)

// States of a session, as the admin API shows them.
const (
	StateStreaming = "streaming"
	StateDetached  = "detached"
)

// NewToken returns a resume token: 128 random bits from crypto/rand,
// base64url. Unlike the session id, which every POST URL carries, it
// travels only on the stream (frame ids) and in a cookie, so knowing a
// session id is never enough to take its stream over.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand's contract)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Token is the session's resume token.
func (s *Session) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// RotateToken gives the session a new resume token and returns the old
// one. A re-attach rotates it: the token a client just proved itself
// with has travelled in a request header (Last-Event-ID), which access
// logs record, so it must prove nothing more.
func (s *Session) RotateToken() (old string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, s.token = s.token, NewToken()
	return old
}

// ReplaceToken makes next the session's resume token if old still is,
// and reports whether it did: of two re-attaches proving the same token
// at once, one spends it.
func (s *Session) ReplaceToken(old, next string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != old {
		return false
	}
	s.token = next
	return true
}

// Attachment is one stream's hold on a session: the queue it drains (it
// is an sse.Queue) and the journal that numbers its frames (an
// sse.Journal). Once another stream has attached, or the session has
// been detached, Take reports the queue closed to it, so the old stream
// ends without taking a message meant for the new one.
type Attachment struct {
	s     *Session
	ready chan struct{}
}

// Ready receives a value when messages may be waiting, when the session
// has closed, when the attachment has ended, or after Wake.
func (a *Attachment) Ready() <-chan struct{} { return a.ready }

// Take appends every message waiting for the client to dst, in order, and
// reports whether the stream is over: the session closed, or this
// attachment ended.
func (a *Attachment) Take(dst [][]byte) ([][]byte, bool) {
	dst, current := a.s.queue.take(dst, a.ready)
	return dst, !current || a.s.reason.Load() != nil
}

// Wake makes Ready receive a value.
func (a *Attachment) Wake() { signal(a.ready) }

// TakeNumbered is Take that numbers what it takes in the same step, so a
// stream that takes over finds every message the old one took in the
// journal (see sse.Journal).
func (a *Attachment) TakeNumbered(dst [][]byte) (_ [][]byte, first uint64, closed bool) {
	dst, first, current := a.s.queue.takeNumbered(dst, a.ready, &a.s.journal)
	return dst, first, !current || a.s.reason.Load() != nil
}

// Stamp numbers msg, written to the client without passing through the
// queue, if a still holds the session.
func (a *Attachment) Stamp(msg []byte) (uint64, bool) {
	return a.s.queue.stamp(msg, a.ready, &a.s.journal)
}

// Flushed notes that every frame up to seq reached the client's socket.
func (a *Attachment) Flushed(seq uint64) { a.s.journal.markFlushed(seq) }

// Current reports whether a still holds its session.
func (a *Attachment) Current() bool {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	return a.s.att == a
}

// Attach makes a new stream the session's: d (if not nil) is handed
// answers at once, and the attachment drains the queue, starting with
// whatever waits in it. A stream attached before is superseded: woken, it
// finds its queue closed. Attach fails, returning nil, once the session
// is closed or its detachment has expired.
func (s *Session) Attach(d Deliverer) *Attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason.Load() != nil || s.expired {
		return nil
	}
	if s.att != nil || s.detached {
		s.reattaches++
	}
	if s.expiry != nil {
		s.expiry.Stop()
		s.expiry = nil
	}
	if s.stopWatch != nil {
		s.stopWatch()
		s.stopWatch = nil
	}
	s.onDetachedEnd = nil
	a := &Attachment{s: s}
	if s.att == nil && !s.detached {
		a.ready = s.queue.ready // the first stream takes the queue's own channel
	} else {
		a.ready = make(chan struct{}, 1)
		s.queue.setReady(a.ready)
	}
	if old := s.att; old != nil {
		signal(old.ready)
	}
	s.att = a
	s.detached = false
	s.since = time.Now()
	if d != nil {
		s.deliverer.Store(&d)
	} else {
		s.deliverer.Store(nil)
	}
	signal(a.ready)
	return a
}

// Detach ends a's hold on the session, if a still holds it, and reports
// whether it did. The session stays open: its dispatches go on and what
// they relay waits in the queue (up to its size) for the next stream.
// If no stream attaches within window, the session is closed with
// ReasonResumeExpired. onEnd is called once, on a goroutine of its own,
// if the session closes while detached, for whatever reason (expiry, the
// admin API, shutdown, a queue that stayed full); not if a stream attaches.
func (s *Session) Detach(a *Attachment, window time.Duration, onEnd func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.att != a || s.reason.Load() != nil {
		return false
	}
	s.queue.setReady(make(chan struct{}, 1)) // wake-ups land nowhere until a stream attaches
	s.deliverer.Store(nil)
	s.att = nil
	s.detached = true
	s.since = time.Now()
	s.onDetachedEnd = onEnd
	stop := context.AfterFunc(s.ctx, s.endDetached)
	s.stopWatch = func() { stop() }
	s.expiry = time.AfterFunc(window, s.expire)
	return true
}

func (s *Session) expire() {
	s.mu.Lock()
	if !s.detached || s.expired {
		s.mu.Unlock()
		return
	}
	s.expired = true
	s.mu.Unlock()
	s.Close(ReasonResumeExpired)
}

func (s *Session) endDetached() {
	s.mu.Lock()
	end := s.onDetachedEnd
	s.onDetachedEnd = nil
	s.mu.Unlock()
	if end != nil {
		end()
	}
}

// State says whether a stream holds the session (StateStreaming) or it
// waits for one (StateDetached), since when, and how many times a stream
// re-attached to it.
func (s *Session) State() (state string, since time.Time, reattaches int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	state = StateStreaming
	if s.detached {
		state = StateDetached
	}
	return state, s.since, s.reattaches
}

// Detached reports whether the session waits for a stream.
func (s *Session) Detached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.detached
}
