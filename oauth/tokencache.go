package oauth

import (
	"sync"
	"time"
)

// tokenCache keeps accepted tokens a short while, so a client that
// sends many requests (an SSE session POSTs every message) costs one
// introspection, or one signature check, per token and period. Keys are
// hashes of the tokens, and an entry holds for the one resource it was
// accepted for; an entry never outlives its token's exp; the cache is
// bounded in entries and cleared whole when full.
type tokenCache struct {
	now     func() time.Time
	mu      sync.Mutex
	entries map[[32]byte]cachedToken
}

type cachedToken struct {
	token    *Token
	resource string
	until    time.Time
}

// maxCachedTokens bounds the cache: each entry holds a token's claims.
const maxCachedTokens = 4096

func newTokenCache(now func() time.Time) *tokenCache {
	return &tokenCache{now: now, entries: make(map[[32]byte]cachedToken)}
}

func (c *tokenCache) get(key [32]byte, resource string) *Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil
	}
	if !c.now().Before(e.until) {
		delete(c.entries, key)
		return nil
	}
	if e.resource != resource {
		return nil
	}
	return e.token
}

func (c *tokenCache) put(key [32]byte, resource string, t *Token, until time.Time) {
	if !t.Expiry.IsZero() && t.Expiry.Before(until) {
		until = t.Expiry
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedTokens {
		clear(c.entries)
	}
	c.entries[key] = cachedToken{token: t, resource: resource, until: until}
}
