package session

import "sync"

// Counter counts sessions by key (a handler, a client of a handler), for
// the limits on how many one key may hold.
type Counter struct {
	mu sync.Mutex
	n  map[string]int
}

// NewCounter returns an empty counter.
func NewCounter() *Counter { return &Counter{n: make(map[string]int)} }

// Acquire counts one more session for key unless it already holds limit
// (limit <= 0: no limit) and reports whether it did.
func (c *Counter) Acquire(key string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && c.n[key] >= limit {
		return false
	}
	c.n[key]++
	return true
}

// Release counts one session fewer for key.
func (c *Counter) Release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] <= 1 {
		delete(c.n, key)
		return
	}
	c.n[key]--
}

// Count is the number of sessions key holds.
func (c *Counter) Count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}
