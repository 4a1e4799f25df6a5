package mcpsse

import (
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

// pooledStore is what survives reloads: the sessions, and how many each
// client holds.
type pooledStore struct {
	*session.Memory
	clients *session.Clients
}

func (s pooledStore) Destruct() error {
	session.CloseAll(s, session.ReasonShutdown)
	return nil
}

func loadStore() (pooledStore, error) {
	v, _, err := stores.LoadOrNew(storeKey, func() (caddy.Destructor, error) {
		return pooledStore{session.NewMemory(), session.NewClients()}, nil
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
