package generation

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
)

// Session is what the bridge keeps for one legacy client on the modern
// path: what it said in initialize and logging/setLevel, what the server
// said in server/discover, the input requests awaiting the client's
// answers and the client's requests in flight (for notifications/cancelled).
// Safe for concurrent use.
type Session struct {
	Discovery Discovery

	mu       sync.Mutex
	client   Client
	logLevel string
	meta     Meta   // cached by Meta, zero when the client or level changed
	prefix   string // of the ids the bridge mints in this session
	minted   uint64
	waiting  map[string]chan json.RawMessage
	calls    map[string]context.CancelFunc
	subs     []string // subscribed resource URIs
	subBytes int
	changed  chan struct{}
	tools    Tools // x-mcp-header bindings by tool name
}

// NewSession starts the state of a client that initialized.
func NewSession(c Client, d Discovery) *Session {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Session{
		Discovery: d,
		client:    c,
		prefix:    "mcp-sse-input-" + hex.EncodeToString(b[:]) + "-",
		waiting:   make(map[string]chan json.RawMessage),
		calls:     make(map[string]context.CancelFunc),
		changed:   make(chan struct{}, 1),
	}
}

// Reinitialize records a client's initialize again (after a reconnect).
func (s *Session) Reinitialize(c Client) {
	s.mu.Lock()
	s.client = c
	s.meta = Meta{}
	s.mu.Unlock()
}

// Meta is the _meta of the next request sent for the client.
func (s *Session) Meta() Meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.meta.encoded == nil {
		s.meta = Meta{Client: s.client, LogLevel: s.logLevel}
		s.meta.encoded = s.meta.object()
	}
	return s.meta
}

// SetLogLevel records the client's logging/setLevel.
func (s *Session) SetLogLevel(level string) {
	s.mu.Lock()
	s.logLevel = level
	s.meta = Meta{}
	s.mu.Unlock()
}

// Ask mints an id for a request to the client, unique in the session, and
// the channel its answer will come on. Cancel the id once done with it.
func (s *Session) Ask() (id json.RawMessage, answer <-chan json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.minted++
	key := s.prefix + strconv.FormatUint(s.minted, 10)
	ch := make(chan json.RawMessage, 1)
	s.waiting[key] = ch
	id, _ = json.Marshal(key)
	return id, ch
}

// Answer hands a client's response to the request awaiting it, and
// reports whether one was: an answer to an id the bridge did not mint, or
// a second answer, finds none.
func (s *Session) Answer(id, msg json.RawMessage) bool {
	var key string
	if json.Unmarshal(id, &key) != nil {
		return false
	}
	s.mu.Lock()
	ch, ok := s.waiting[key]
	delete(s.waiting, key)
	s.mu.Unlock()
	if ok {
		ch <- msg // buffered, and the only send
	}
	return ok
}

// Cancel forgets an id minted by Ask; a late answer finds nothing.
func (s *Session) Cancel(id json.RawMessage) {
	var key string
	if json.Unmarshal(id, &key) != nil {
		return
	}
	s.mu.Lock()
	delete(s.waiting, key)
	s.mu.Unlock()
}

// Waiting is how many input requests await the client.
func (s *Session) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}

// Track records a client request in flight, which cancel ends; the
// returned func forgets it.
func (s *Session) Track(id json.RawMessage, cancel context.CancelFunc) (untrack func()) {
	key := string(bytes.TrimSpace(id))
	s.mu.Lock()
	s.calls[key] = cancel
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.calls, key)
		s.mu.Unlock()
	}
}

// Cancelled ends the client request notifications/cancelled names (its
// params, raw); it reports whether one was in flight.
func (s *Session) Cancelled(params json.RawMessage) bool {
	var p struct {
		RequestID json.RawMessage `json:"requestId"`
	}
	if json.Unmarshal(params, &p) != nil || p.RequestID == nil {
		return false
	}
	s.mu.Lock()
	cancel, ok := s.calls[string(bytes.TrimSpace(p.RequestID))]
	s.mu.Unlock()
	if ok {
		cancel()
	}
	return ok
}
