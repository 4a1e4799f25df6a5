package session

import "sync"

// Counter counts by key (sessions of a handler or of a client, bytes a
// client's POSTs hold), for the limits on how much one key may hold.
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

// AcquireN counts n more for key unless that would make more than limit
// (limit <= 0: no limit), and reports whether it did.
func (c *Counter) AcquireN(key string, n, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && c.n[key]+n > limit {
		return false
	}
	c.n[key] += n
	return true
}

// ReleaseN counts n fewer for key.
func (c *Counter) ReleaseN(key string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] <= n {
		delete(c.n, key)
		return
	}
	c.n[key] -= n
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
