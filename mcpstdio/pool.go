package mcpstdio

import (
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/internal/postbody"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// pool keeps the registry of sessions alive across config reloads: a
// reload provisions the new handlers (which join it) before it cleans up
// the old ones (which leave it), so a request handled by the new config
// finds a process started under the old one. When the last handler
// leaves, every process is stopped.
var pool = caddy.NewUsagePool()

const poolKey = "mcp_stdio"

// registry is the live sessions of every mcp_stdio handler, and the
// processes still running (a session leaves the map when it ends; its
// process counts until it is gone).
type registry struct {
	mu       sync.Mutex
	sessions map[string]*mcpSession
	running  map[*mcpSession]struct{}
	starting int // processes admitted and not yet started
	clients  *session.Counter
	// bodies counts the bytes of POST bodies read and not yet taken by
	// their process (max_pending_bytes).
	bodies postbody.Budget
	// keyed are the processes of sessionless requests, by slot (the
	// handler's command and the process_key value), from the moment the
	// first request of the key asks for one.
	keyed map[string]*mcpSession
	// ring seals the requestState of handlers without a state_secret: a
	// random key, kept as long as the registry, across config reloads.
	ring *cluster.Keyring
}

func newRegistry() *registry {
	return &registry{
		sessions: make(map[string]*mcpSession),
		running:  make(map[*mcpSession]struct{}),
		clients:  session.NewCounter(),
		bodies:   postbody.NewBudget(),
		keyed:    make(map[string]*mcpSession),
		ring:     cluster.RandomKeyring(),
	}
}

func loadRegistry() (*registry, error) {
	v, _, err := pool.LoadOrNew(poolKey, func() (caddy.Destructor, error) {
		return newRegistry(), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*registry), nil
}

// currentRegistry returns the registry the handlers share, if any config
// holds one, without counting as one of its users.
func currentRegistry() *registry {
	var reg *registry
	pool.Range(func(_, v any) bool {
		reg = v.(*registry)
		return false
	})
	return reg
}

// admit reserves room for one more process: false with which limit
// refused it. limit <= 0 is no limit.
func (r *registry) admit(client string, maxProcs, perClient int) (ok bool, which string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if maxProcs > 0 && len(r.running)+r.starting >= maxProcs {
		return false, "max_processes"
	}
	if !r.clients.Acquire(client, perClient) {
		return false, "max_processes_per_client"
	}
	r.starting++
	return true, ""
}

// add registers a started session; its room was reserved by admit.
func (r *registry) add(s *mcpSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.keyed == nil {
		// A sessionless process is reached by its key, never by an
		// Mcp-Session-Id.
		r.sessions[s.id] = s
	}
	r.running[s] = struct{}{}
	r.starting--
}

// unreserve gives back room reserved for a process that did not start.
func (r *registry) unreserve(client string) {
	r.mu.Lock()
	r.starting--
	r.mu.Unlock()
	r.clients.Release(client)
}

func (r *registry) get(id string) (*mcpSession, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sessions[id]
	return s, ok
}

func (r *registry) remove(s *mcpSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions[s.id] == s {
		delete(r.sessions, s.id)
	}
	if s.keyed != nil && r.keyed[s.keyed.slot] == s {
		delete(r.keyed, s.keyed.slot)
	}
}

// keyedSlot returns the process of slot, made by create (and created
// true) when there is none, or the one there has ended.
func (r *registry) keyedSlot(slot string, create func() *mcpSession) (s *mcpSession, created bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.keyed[slot]; s != nil && !closed(s.endedCh) {
		return s, false
	}
	s = create()
	r.keyed[slot] = s
	return s, true
}

// dropSlot forgets the process of a slot that did not start.
func (r *registry) dropSlot(s *mcpSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keyed[s.keyed.slot] == s {
		delete(r.keyed, s.keyed.slot)
	}
}

// find returns the running process whose session id is id, legacy or
// sessionless.
func (r *registry) find(id string) (*mcpSession, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sessions[id]; ok {
		return s, true
	}
	for s := range r.running {
		if s.id == id {
			return s, true
		}
	}
	return nil, false
}

// gone counts a process out once it no longer runs.
func (r *registry) gone(s *mcpSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.running[s]; ok {
		delete(r.running, s)
		r.clients.Release(s.client)
	}
}

// list returns the sessions whose process still runs.
func (r *registry) list() []*mcpSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := make([]*mcpSession, 0, len(r.running))
	for s := range r.running {
		list = append(list, s)
	}
	return list
}

func (r *registry) runningCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

// endAll ends every session for reason and waits, up to wait, until
// their processes are gone.
func (r *registry) endAll(reason string, wait time.Duration) {
	list := r.list()
	for _, s := range list {
		s.end(reason, nil)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for _, s := range list {
		select {
		case <-s.gone:
		case <-deadline.C:
			return
		}
	}
}

// Destruct stops every process when the last handler is cleaned up.
func (r *registry) Destruct() error {
	r.endAll(ReasonShutdown, shutdownWait())
	return nil
}
