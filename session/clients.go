package session

import "sync"

// Clients counts the sessions each client holds, for a per-client limit.
type Clients struct {
	mu sync.Mutex
	n  map[string]int
}

// NewClients returns an empty counter.
func NewClients() *Clients { return &Clients{n: make(map[string]int)} }

// Acquire counts one more session for client unless it already holds
// limit (limit <= 0: no limit) and reports whether it did.
func (c *Clients) Acquire(client string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && c.n[client] >= limit {
		return false
	}
	c.n[client]++
	return true
}

// Release counts one session fewer for client.
func (c *Clients) Release(client string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[client] <= 1 {
		delete(c.n, client)
		return
	}
	c.n[client]--
}
