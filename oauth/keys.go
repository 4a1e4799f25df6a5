package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// keyCache holds the authorization server's public signing keys by kid.
// A token whose kid it does not know makes it fetch the key set again
// (the server rotated its keys), but at most once per minInterval: a
// client sending random kids cannot make us hammer the server, it gets
// refused from the cache. Keys are fetched again after maxAge too, in the
// background: the request that finds them stale is decided with the keys
// in hand rather than made to wait on the server (which may be slow or
// down, and would stall every request behind that fetch). When fetching
// fails the keys in hand are kept (a signature they verify is still the
// server's) until dropAfter has passed since the last success, and then
// no longer used: no keys, no request through.
type keyCache struct {
	load        func(context.Context) ([]jose.JSONWebKey, error)
	minInterval time.Duration
	maxAge      time.Duration
	dropAfter   time.Duration
	now         func() time.Time

	mu          sync.RWMutex
	keys        []jose.JSONWebKey
	fetched     time.Time // last successful fetch
	lastAttempt time.Time
	lastErr     error

	refresh sync.Mutex // one fetch at a time; the others wait for its keys
}

// errKeysUnavailable is a key set that could not be fetched.
var errKeysUnavailable = errors.New("the authorization server's keys could not be fetched")

// find returns the key that verifies a token signed with alg under kid.
func (c *keyCache) find(ctx context.Context, kid string, alg string) (*jose.JSONWebKey, error) {
	now := c.now()
	c.mu.RLock()
	key := pick(c.keys, kid, alg)
	age := now.Sub(c.fetched)
	c.mu.RUnlock()
	if key != nil && age < c.dropAfter {
		if age >= c.maxAge {
			c.refreshInBackground(ctx, now)
		}
		return key, nil
	}
	if err := c.update(ctx, now); err != nil && key == nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.keys == nil || now.Sub(c.fetched) >= c.dropAfter {
		// None, or none fetched within dropAfter (the last attempt to
		// fetch them may be too recent to try again).
		return nil, refuse(ReasonUnavailable, errors.Join(errKeysUnavailable, c.lastErr))
	}
	if key = pick(c.keys, kid, alg); key != nil {
		return key, nil
	}
	return nil, refuse(ReasonUnknownKey, errors.New("no key of the authorization server matches kid "+quoteBounded(kid)))
}

// update fetches the key set unless one was fetched (or tried) less than
// minInterval ago. It returns an Unavailable error when the key set in
// hand is empty because fetching failed.
func (c *keyCache) update(ctx context.Context, now time.Time) error {
	c.refresh.Lock()
	defer c.refresh.Unlock()
	return c.updateLocked(ctx, now)
}

// refreshInBackground fetches the key set again without waiting for it,
// unless a fetch is under way. The fetch is bounded by load's own
// timeout, not by the request that started it.
func (c *keyCache) refreshInBackground(ctx context.Context, now time.Time) {
	if !c.refresh.TryLock() {
		return
	}
	go func() {
		defer c.refresh.Unlock()
		_ = c.updateLocked(context.WithoutCancel(ctx), now)
	}()
}

// updateLocked is update with c.refresh held.
func (c *keyCache) updateLocked(ctx context.Context, now time.Time) error {
	c.mu.RLock()
	recent := !c.lastAttempt.IsZero() && now.Sub(c.lastAttempt) < c.minInterval
	c.mu.RUnlock()
	if recent {
		return nil // another caller just fetched, or fetching is rate limited
	}
	keys, err := c.load(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastAttempt = c.now()
	c.lastErr = err
	if err == nil {
		c.keys, c.fetched = keys, c.lastAttempt
		return nil
	}
	if c.keys != nil && c.lastAttempt.Sub(c.fetched) >= c.dropAfter {
		c.keys = nil
	}
	return refuse(ReasonUnavailable, err)
}

// pick is the key of keys with kid that may verify alg. A token without
// kid may use the one key that fits, never a guess among several.
func pick(keys []jose.JSONWebKey, kid, alg string) *jose.JSONWebKey {
	var found *jose.JSONWebKey
	for i := range keys {
		k := &keys[i]
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if kid != "" {
			return k
		}
		if found != nil {
			return nil
		}
		found = k
	}
	return found
}

// parseKeySet reads a JWKS, keeping the public signing keys: a key that
// is malformed or of a kind go-jose does not know is skipped rather than
// failing the set (a server may publish keys we do not use), as are
// encryption keys and symmetric ones (no public key can be an HMAC
// secret here).
func parseKeySet(raw []json.RawMessage) []jose.JSONWebKey {
	keys := make([]jose.JSONWebKey, 0, len(raw))
	for _, r := range raw {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil || !k.Valid() {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if _, symmetric := k.Key.([]byte); symmetric {
			continue
		}
		keys = append(keys, k.Public())
	}
	return keys
}

// quoteBounded quotes s for an error message, cut to a length a log line
// can carry: kids come from the client.
func quoteBounded(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}
