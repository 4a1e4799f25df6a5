package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/authservertest"
	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

// gatedTransport reaches the real authorization server, except that
// while the gate is shut a request for its key set waits (for the gate
// or its own context): an authorization server that stopped answering.
type gatedTransport struct {
	mu       sync.Mutex
	open     chan struct{} // closed while the gate is open
	waiting  atomic.Int64  // key-set requests held at the gate
	finished atomic.Int64  // key-set requests answered (or failed)
}

func newGate() *gatedTransport {
	g := &gatedTransport{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gatedTransport) shut() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedTransport) release() {
	g.mu.Lock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
	g.mu.Unlock()
}

func (g *gatedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.Contains(r.URL.Path, "jwks") {
		return http.DefaultTransport.RoundTrip(r)
	}
	defer g.finished.Add(1)
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	g.waiting.Add(1)
	select {
	case <-open:
	case <-r.Context().Done():
		g.waiting.Add(-1)
		return nil, r.Context().Err()
	}
	g.waiting.Add(-1)
	return http.DefaultTransport.RoundTrip(r)
}

// clock is a settable now for the verifier: real time plus an offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time           { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration)  { c.offset.Add(int64(d)) }
func (c *clock) set(offset time.Duration) { c.offset.Store(int64(offset)) }

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOAuthStaleKeysRefreshedInBackground: once the key set is older
// than KeysMaxAge, a token signed with a key in hand is decided at once
// while the key set is fetched again in the background; a request never
// waits on an authorization server that stopped answering. A key the
// server withdrew stops being honoured once that fetch is in.
func TestOAuthStaleKeysRefreshedInBackground(t *testing.T) {
	as := authservertest.Start(t)
	gate := newGate()
	var clk clock
	v := newVerifier(t, as, func(c *oauth.Config) {
		c.Now = clk.now
		c.KeysMaxAge = time.Minute
		c.KeysMinRefresh = time.Second
		c.TokenCache = -1 // every Verify looks up its key
		c.Timeout = time.Minute
		c.HTTPClient = &http.Client{Transport: gate}
	})
	tok := func() string { return authservertest.Sign(t, as.SigningKey(), claims(as)) }
	if _, err := v.Verify(t.Context(), tok(), resource); err != nil {
		t.Fatal(err)
	}

	// Stale, and the server hangs: the token is decided with the key in
	// hand, not after the fetch.
	gate.shut()
	clk.advance(2 * time.Minute)
	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(t.Context(), tok(), resource)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a token signed with a stale key in hand: %v", err)
		}
	case <-time.After(10 * time.Second):
		gate.release()
		t.Fatal("a token signed with a stale key in hand waited on the key set's fetch")
	}
	eventuallyTrue(t, "the key set fetched again in the background", func() bool { return gate.waiting.Load() == 1 })
	// Many requests meanwhile start no other fetch, nor leave anything
	// behind waiting to start one.
	goroutines := runtime.NumGoroutine()
	for range 200 {
		if _, err := v.Verify(t.Context(), tok(), resource); err != nil {
			t.Fatal(err)
		}
	}
	if n := gate.waiting.Load(); n != 1 {
		t.Errorf("%d key-set fetches under way, want 1", n)
	}
	if n := runtime.NumGoroutine() - goroutines; n > 100 {
		t.Errorf("200 requests while the key set is fetched left %d goroutines more", n)
	}

	// The server withdraws the key: once the background fetch brings the
	// new set, the withdrawn key is refused.
	withdrawn := tok()
	as.Rotate(false)
	fetched := gate.finished.Load()
	gate.release()
	eventuallyTrue(t, "the background fetch to end", func() bool { return gate.finished.Load() > fetched })
	eventuallyTrue(t, "the withdrawn key to be refused", func() bool {
		_, err := v.Verify(t.Context(), withdrawn, resource)
		return reason(err) == oauth.ReasonUnknownKey
	})
	if _, err := v.Verify(t.Context(), tok(), resource); err != nil {
		t.Fatalf("a token signed with the new key: %v", err)
	}
}

// TestOAuthKeysDroppedAfterDropAfter: while the key set cannot be
// fetched, the keys in hand are used until KeysDropAfter has passed
// since the last fetch that worked, and never after, even when the
// last failed attempt is too recent to try again.
func TestOAuthKeysDroppedAfterDropAfter(t *testing.T) {
	as := authservertest.Start(t)
	gate := newGate()
	var clk clock
	v := newVerifier(t, as, func(c *oauth.Config) {
		c.Now = clk.now
		c.KeysMaxAge = time.Minute
		c.KeysMinRefresh = 10 * time.Minute
		c.KeysDropAfter = time.Hour
		c.TokenCache = -1
		c.Timeout = 2 * time.Second
		c.HTTPClient = &http.Client{Transport: gate}
	})
	key := as.SigningKey()
	tok := func() string {
		c := claims(as)
		// The token is as fresh as the verifier's clock.
		c["iat"] = clk.now().Unix()
		c["exp"] = clk.now().Add(5 * time.Minute).Unix()
		return authservertest.Sign(t, key, c)
	}
	if _, err := v.Verify(t.Context(), tok(), resource); err != nil {
		t.Fatal(err)
	}
	as.Stop()
	// 55 minutes on: stale; the background fetch fails, and the key in
	// hand still decides.
	clk.set(55 * time.Minute)
	fetched := gate.finished.Load()
	if _, err := v.Verify(t.Context(), tok(), resource); err != nil {
		t.Fatalf("a stale key within KeysDropAfter, server down: %v", err)
	}
	eventuallyTrue(t, "the background fetch to fail", func() bool { return gate.finished.Load() > fetched })
	// Past the hour since the last fetch that worked, 5m after the failed
	// attempt (within KeysMinRefresh: no new attempt): refused as
	// unavailable, not decided with keys an hour old.
	clk.set(time.Hour + 30*time.Second)
	_, err := v.Verify(t.Context(), tok(), resource)
	var e *oauth.Error
	if !errors.As(err, &e) || !e.Unavailable() {
		t.Fatalf("keys past KeysDropAfter, the last attempt too recent to try again: %v, want unavailable", err)
	}
}

// TestOAuthStaleKeysRefreshOutlivesRequest: the background fetch of a
// stale key set is not given up when the request that started it ends
// (Caddy cancels a request's context then): the new set comes in, and a
// key the server withdrew stops being honoured.
func TestOAuthStaleKeysRefreshOutlivesRequest(t *testing.T) {
	as := authservertest.Start(t)
	gate := newGate()
	var clk clock
	v := newVerifier(t, as, func(c *oauth.Config) {
		c.Now = clk.now
		c.KeysMaxAge = time.Minute
		c.KeysMinRefresh = 90 * time.Second // one background fetch in this test, no second chance
		c.TokenCache = -1
		c.Timeout = time.Minute
		c.HTTPClient = &http.Client{Transport: gate}
	})
	withdrawn := authservertest.Sign(t, as.SigningKey(), claims(as))
	if _, err := v.Verify(t.Context(), withdrawn, resource); err != nil {
		t.Fatal(err)
	}
	gate.shut()
	clk.advance(2 * time.Minute)
	request, end := context.WithCancel(t.Context())
	if _, err := v.Verify(request, withdrawn, resource); err != nil {
		t.Fatalf("a token signed with a stale key in hand: %v", err)
	}
	eventuallyTrue(t, "the key set fetched again in the background", func() bool { return gate.waiting.Load() == 1 })
	fetched := gate.finished.Load()
	end() // the request is over
	as.Rotate(false)
	gate.release()
	eventuallyTrue(t, "the background fetch to end", func() bool { return gate.finished.Load() > fetched })
	eventuallyTrue(t, "the withdrawn key to be refused", func() bool {
		_, err := v.Verify(t.Context(), withdrawn, resource)
		return reason(err) == oauth.ReasonUnknownKey
	})
}
