package mcpsse

import (
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpsse/caddy-mcp-sse/session"
)

// stores keeps the session store alive across config reloads: a reload
// provisions the new handlers (which join the store) before it cleans up
// the old ones (which leave it), so a POST handled by the new config finds
// a stream still held by the old one. When the last handler leaves, the
// store is destructed and its sessions closed.
var stores = caddy.NewUsagePool()

const storeKey = "mcp_sse"

// pooledStore is what survives reloads: the sessions, how many each
// handler and each client of a handler holds, and the bytes of POST
// bodies held by dispatches not yet ended, across every handler.
type pooledStore struct {
	*session.Memory
	handlers *session.Counter // by handler scope
	clients  *session.Counter // by handler scope and client IP
	held     *atomic.Int64
	// clientBytes is held, by handler scope and client IP.
	clientBytes *session.Counter
}

func (s pooledStore) Destruct() error {
	session.CloseAll(s, session.ReasonShutdown)
	return nil
}

// hold counts n more bytes of POST bodies held unless that would make
// more than limit (limit <= 0: no limit), and reports whether it did.
func (s pooledStore) hold(n, limit int64) bool { return session.AddWithin(s.held, n, limit) }

func loadStore() (pooledStore, error) {
	v, _, err := stores.LoadOrNew(storeKey, func() (caddy.Destructor, error) {
		return pooledStore{session.NewMemory(), session.NewCounter(), session.NewCounter(), new(atomic.Int64), session.NewCounter()}, nil
	})
	if err != nil {
		return pooledStore{}, err
	}
	return v.(pooledStore), nil
}

// currentStore returns the store the handlers share, if any config holds
// one; it does not create one or count as a user of it.
func currentStore() (pooledStore, bool) {
	var st pooledStore
	var found bool
	stores.Range(func(_, v any) bool {
		st, found = v.(pooledStore), true
		return false
	})
	return st, found
}

func liveSessionCount() int {
	if st, ok := currentStore(); ok {
		return st.Len()
	}
	return 0
}
