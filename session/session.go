// Package session holds MCP HTTP+SSE sessions: their ids, their bounded
// outbound queues, the upstream state learned while bridging them, the
// order in which their messages are dispatched, and the store that finds
// them by id. It knows nothing of Caddy.
package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a session is closed; they end up in logs and metrics.
const (
	ReasonClientGone   = "client_gone"
	ReasonSendTimeout  = "send_timeout"
	ReasonRapidYield   = "rapid_yield"
	ReasonSlowConsumer = "slow_consumer"
	ReasonWriteError   = "write_error"
	ReasonAdmin        = "admin"
	ReasonShutdown     = "shutdown"
	// ReasonResumeExpired closes a detached session no stream re-attached
	// to within its resume window.
	ReasonResumeExpired = "resume_expired"
	// ReasonMoved closes an instance's copy of a session another instance
	// has taken over (cluster mode): the session lives on there, so
	// nothing of it is ended upstream.
	ReasonMoved = "moved"
)

var (
	// ErrClosed is returned when a message is sent to a closed session.
	ErrClosed = errors.New("session closed")
	// ErrQueueFull is returned when a session's queue stayed full for as
	// long as a sender may wait; the session has been closed as a slow
	// consumer.
	ErrQueueFull = errors.New("session queue full: closed as slow consumer")
)

// Session is one client's HTTP+SSE session.
type Session struct {
	ID         string
	RemoteAddr string
	Opened     time.Time
	// Identity is who opened the session, as the authentication in front
	// of the bridge named them; "" for none. Only the same identity may
	// post to the session.
	Identity string
	// Scope names the handler that opened the session; only that handler
	// (in this config or the next) takes its messages.
	Scope string
	// ClientKey is what the session is counted under for the per-client
	// limit, kept so that it is given back under the same key whichever
	// address re-attaches.
	ClientKey string
	// ProtocolHint is the protocol version the client's GET named
	// (MCP-Protocol-Version), for an upstream the bridge initializes
	// itself.
	ProtocolHint string

	queue   queue
	journal journal
	ctx     context.Context
	cancel  context.CancelFunc
	reason  atomic.Pointer[string]

	mu              sync.Mutex
	upstreamID      string
	protocolVersion string
	// tail is closed when the last dispatch started has been handed to
	// the upstream; the next one waits on it (see Turn).
	tail chan struct{}
	// watches is what Close cancels (closewatch.go), a list threaded
	// through the watchers' own CloseWatch; watchesClosed is set once it
	// has.
	watches       *CloseWatch
	watchesClosed bool
	// token is the resume token, which proves a reconnecting client is
	// this session's (see NewToken); a new one replaces it at each
	// re-attach.
	token string
	// The stream's hold (attach.go): the attachment holding the session,
	// or detached since when, until expiry.
	att           *Attachment
	detached      bool
	expired       bool
	since         time.Time
	reattaches    int
	expiry        *time.Timer
	stopWatch     func()
	onDetachedEnd func()
	initialized   bool // the upstream answered an initialize
	// upstreamProtocol is "2026-07-28" for a session bridged to a
	// sessionless upstream, "legacy" for one on the session-based path,
	// "" until the client initialized.
	upstreamProtocol string
	// bridge is the dispatcher's state for a session on the sessionless
	// path (what the client declared, the input requests awaiting it).
	bridge atomic.Value

	inflight     atomic.Int64 // dispatches admitted and not yet ended
	responses    atomic.Int64 // the client's responses admitted and not yet ended
	deliverer    atomic.Pointer[Deliverer]
	listening    atomic.Bool
	bridgeInit   atomic.Bool // the bridge has tried to initialize the upstream
	ended        atomic.Bool // what follows a close has been done
	messagesIn   atomic.Int64
	messagesOut  atomic.Int64
	keepalives   atomic.Int64
	lastActivity atomic.Int64 // unix nanoseconds of the last message either way
}

// noDispatch is the tail of a session no dispatch has started on: closed,
// so the first one goes ahead. One channel serves every such session.
var noDispatch = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// New returns an open session whose outbound queue holds up to queueSize
// messages.
func New(id, remoteAddr string, queueSize int) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now()
	s := &Session{
		ID:         id,
		RemoteAddr: remoteAddr,
		Opened:     now,
		token:      NewToken(),
		queue:      newQueue(queueSize),
		journal:    journal{maxBytes: DefaultReplayBytes},
		ctx:        ctx,
		cancel:     cancel,
		tail:       noDispatch,
		since:      now,
	}
	s.lastActivity.Store(now.UnixNano())
	return s
}

// Deliverer writes a message to the client at once if it can, reporting
// false, having written nothing, if it cannot right now (a write is under
// way, or the stream is not running); an error means the message was
// taken but the write failed.
type Deliverer func(msg []byte) (delivered bool, err error)

// SendAnswer is Send for the answer to a client's request: the client is
// waiting for it, so it is written at once (after anything queued ahead of
// it) when the stream writer is free, and queued otherwise. Everything
// else goes through Send, so that a burst of notifications is written in
// batches, one flush each, not one flush per message.
func (s *Session) SendAnswer(ctx context.Context, msg []byte, wait time.Duration) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	if delivered, err := s.deliver(msg); delivered {
		return err
	}
	return s.Send(ctx, msg, wait)
}

func (s *Session) deliver(msg []byte) (bool, error) {
	d := s.deliverer.Load()
	if d == nil {
		return false, nil
	}
	// Counted before the write: the client may act on the message (and
	// ask for the count) before the deliverer has even returned.
	s.messagesOut.Add(1)
	s.touch()
	delivered, err := (*d)(msg)
	if !delivered {
		s.messagesOut.Add(-1) // Send counts it when it queues it
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return true, nil
}

// QueueLen is the number of messages waiting for the client.
func (s *Session) QueueLen() int { return s.queue.len() }

// Done is closed when the session is closed.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Context is cancelled when the session is closed; work done on the
// session's behalf (upstream requests) is bound to it.
func (s *Session) Context() context.Context { return s.ctx }

// Send queues msg for the client. While the queue is full it waits, up to
// wait, for the stream writer to make room: that backpressure reaches the
// upstream through the reply it is relaying, and a burst larger than the
// queue passes as fast as the client reads. A queue that stays full that
// long means the client cannot keep up: the session is closed as a slow
// consumer rather than let memory grow. ctx ending first gives its error.
func (s *Session) Send(ctx context.Context, msg []byte, wait time.Duration) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	ok, err := s.queue.push(ctx, msg, wait, s.ctx.Done())
	if err != nil {
		return err
	}
	if !ok {
		s.Close(ReasonSlowConsumer)
		return ErrQueueFull
	}
	s.messagesOut.Add(1)
	s.touch()
	return nil
}

// TrySend queues msg without waiting; a full queue closes the session as a
// slow consumer, as Send does when its wait runs out.
func (s *Session) TrySend(msg []byte) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	if !s.queue.tryPush(msg) {
		s.Close(ReasonSlowConsumer)
		return ErrQueueFull
	}
	s.messagesOut.Add(1)
	s.touch()
	return nil
}

// Close closes the session for reason. Only the first call counts; later
// ones are no-ops, so every path that ends a session may call it.
func (s *Session) Close(reason string) {
	if s.reason.CompareAndSwap(nil, &reason) {
		s.cancel()
		s.cancelWatches()
		s.queue.wake() // the stream writer waits on Ready, not on Done
	}
}

// Reason is why the session was closed, or "" while it is open.
func (s *Session) Reason() string {
	if r := s.reason.Load(); r != nil {
		return *r
	}
	return ""
}

// Closed reports whether the session has been closed.
func (s *Session) Closed() bool { return s.ctx.Err() != nil }

// Upstream returns the upstream's session id (Mcp-Session-Id) and the
// negotiated protocol version, each "" until known.
func (s *Session) Upstream() (id, protocolVersion string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upstreamID, s.protocolVersion
}

// SetUpstreamID records the upstream's session id.
func (s *Session) SetUpstreamID(id string) {
	s.mu.Lock()
	s.upstreamID = id
	s.mu.Unlock()
}

// SetProtocolVersion records the protocol version initialize negotiated.
func (s *Session) SetProtocolVersion(v string) {
	s.mu.Lock()
	s.protocolVersion = v
	s.mu.Unlock()
}

// SetUpstreamProtocol records which generation of upstream the session
// is bridged to ("2026-07-28" or "legacy").
func (s *Session) SetUpstreamProtocol(p string) {
	s.mu.Lock()
	s.upstreamProtocol = p
	s.mu.Unlock()
}

// UpstreamProtocol is what SetUpstreamProtocol recorded, "" before.
func (s *Session) UpstreamProtocol() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upstreamProtocol
}

// SetBridge keeps the dispatcher's state of a session on the sessionless
// path; it lives and ends with the session.
func (s *Session) SetBridge(v any) { s.bridge.Store(v) }

// Bridge is what SetBridge stored, nil before.
func (s *Session) Bridge() any { return s.bridge.Load() }

// ResetUpstream forgets the upstream session, so that the next initialize
// starts a new one. It only forgets id if it is still the current one.
func (s *Session) ResetUpstream(id string) {
	s.mu.Lock()
	if s.upstreamID == id {
		s.upstreamID = ""
		s.protocolVersion = ""
	}
	s.mu.Unlock()
}

// Turn reserves the next place in the session's dispatch order for t,
// and returns what to wait on before handing the message to the
// upstream; the caller calls t.Hand once it has (or has given up), which
// lets the next one go. Turns are granted in the order Turn was called,
// so messages reach the upstream in the order they were posted, while a
// slow reply never holds back the messages after it. t is the caller's
// (a dispatch keeps it in its own state), so a turn costs one channel.
func (s *Session) Turn(t *Turn) (wait <-chan struct{}) {
	t.mine = make(chan struct{})
	s.mu.Lock()
	prev := s.tail
	s.tail = t.mine
	s.mu.Unlock()
	return prev
}

// Turn is one place in a session's dispatch order (see Session.Turn).
type Turn struct {
	mine   chan struct{}
	handed atomic.Bool
}

// Hand lets the next message of the session go. Handing on twice is
// harmless.
func (t *Turn) Hand() {
	if t.handed.CompareAndSwap(false, true) {
		close(t.mine)
	}
}

// Admit counts work more dispatches of requests and notifications, and
// responses more of the client's responses, in flight, unless either
// would then exceed limit (limit <= 0: no limit), and reports whether it
// did. The two are counted apart, so that a session at its limit of
// requests can still answer the server's own (sampling, elicitation),
// while neither kind is unbounded. Each admitted dispatch calls Finished
// when it ends.
func (s *Session) Admit(work, responses, limit int) bool {
	if !AddWithin(&s.inflight, int64(work), int64(limit)) {
		return false
	}
	if !AddWithin(&s.responses, int64(responses), int64(limit)) {
		s.inflight.Add(-int64(work))
		return false
	}
	return true
}

// AddWithin adds k to n unless n would then exceed limit (limit <= 0: no
// limit), and reports whether it did. It reserves with compare-and-swap,
// so concurrent callers never overshoot the limit together, and no lock
// is held.
func AddWithin(n *atomic.Int64, k, limit int64) bool {
	if limit <= 0 {
		n.Add(k)
		return true
	}
	for {
		cur := n.Load()
		if cur+k > limit {
			return false
		}
		if n.CompareAndSwap(cur, cur+k) {
			return true
		}
	}
}

// Finished counts one admitted dispatch as ended; response says which
// kind it was.
func (s *Session) Finished(response bool) {
	if response {
		s.responses.Add(-1)
	} else {
		s.inflight.Add(-1)
	}
}

// InFlight is the number of admitted dispatches not yet ended.
func (s *Session) InFlight() int { return int(s.inflight.Load()) }

// Initialized reports whether the upstream has answered an initialize on
// this session (the client's, or the bridge's own).
func (s *Session) Initialized() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initialized
}

// ClaimEnd reports whether the caller is the first to do what follows
// the session's close (give back its places, end its upstream session):
// however many paths see it closed, that is done once.
func (s *Session) ClaimEnd() bool { return s.ended.CompareAndSwap(false, true) }

// ClaimBridgeInitialize reports whether the caller is the first to
// initialize the upstream on the client's behalf: the bridge tries once
// per session, so a failing upstream costs one extra request, not one
// per message.
func (s *Session) ClaimBridgeInitialize() bool { return s.bridgeInit.CompareAndSwap(false, true) }

// SetInitialized records whether the upstream session is initialized.
func (s *Session) SetInitialized(v bool) {
	s.mu.Lock()
	s.initialized = v
	s.mu.Unlock()
}

// StartListening reports whether the caller is the first to start the
// session's listener on the upstream's standalone stream.
func (s *Session) StartListening() bool { return s.listening.CompareAndSwap(false, true) }

// StopListening marks the listener gone, so that another may start.
func (s *Session) StopListening() { s.listening.Store(false) }

// CountIn counts a message received from the client.
func (s *Session) CountIn() {
	s.messagesIn.Add(1)
	s.touch()
}

// CountKeepalive counts a keepalive frame written to the client.
func (s *Session) CountKeepalive() { s.keepalives.Add(1) }

// Keepalives is the number of keepalive frames written to the client.
func (s *Session) Keepalives() int64 { return s.keepalives.Load() }

// LastActivity is when a message last went either way.
func (s *Session) LastActivity() time.Time { return time.Unix(0, s.lastActivity.Load()) }

func (s *Session) touch() { s.lastActivity.Store(time.Now().UnixNano()) }

// Counts returns the messages received from the client and queued for it.
func (s *Session) Counts() (in, out int64) {
	return s.messagesIn.Load(), s.messagesOut.Load()
}
