package oauth_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/authservertest"
	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

// resource is the protected resource the tests' tokens are for; the
// authorization server issues tokens for whatever resource a client
// names, as a real one configured to accept it does.
const resource = "http://127.0.0.1:9999/"

func newVerifier(t *testing.T, as *authservertest.Server, mod func(*oauth.Config)) *oauth.Verifier {
	t.Helper()
	cfg := oauth.Config{Issuer: as.Issuer()}
	if mod != nil {
		mod(&cfg)
	}
	v, err := oauth.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// claims are those of a token the server would issue for resource.
func claims(as *authservertest.Server) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": as.Issuer(), "sub": "alice", "aud": resource, "client_id": "mcp-client",
		"scope": "mcp:tools", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
}

func with(c map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(c))
	for key, val := range c {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestOAuthVerifierAcceptsTheServersTokens(t *testing.T) {
	as := authservertest.Start(t)
	v := newVerifier(t, as, nil)
	tok, err := v.Verify(t.Context(), as.Token(authservertest.Client, resource, "mcp:tools"), resource)
	if err != nil {
		t.Fatalf("a token the server issued for this resource was refused: %v", err)
	}
	if tok.Subject != authservertest.Client || !tok.HasScopes([]string{"mcp:tools"}) || tok.HasScopes([]string{"mcp:admin"}) {
		t.Errorf("token: %+v", tok)
	}
	// The same resource without its trailing slash is the same resource.
	if _, err := v.Verify(t.Context(), as.Token(authservertest.Client, resource, "mcp:tools"), strings.TrimSuffix(resource, "/")); err != nil {
		t.Errorf("a trailing slash made the audience differ: %v", err)
	}
}

func TestOAuthVerifierRefusals(t *testing.T) {
	as := authservertest.Start(t)
	v := newVerifier(t, as, nil)
	key := as.SigningKey()
	c := claims(as)
	now := time.Now()
	forged := authservertest.NewKey(t)
	forged.KeyID = key.KeyID // a key of our own under the server's kid
	for _, tc := range []struct {
		name  string
		token string
		want  oauth.Reason
	}{
		{"the server's key, well formed", authservertest.Sign(t, key, c), ""},
		{"expired", authservertest.Sign(t, key, with(c, "exp", now.Add(-2*time.Minute).Unix())), oauth.ReasonExpired},
		{"expired within the leeway", authservertest.Sign(t, key, with(c, "exp", now.Add(-10*time.Second).Unix())), ""},
		{"no exp", authservertest.Sign(t, key, with(c, "exp", nil)), oauth.ReasonExpired},
		{"not yet valid", authservertest.Sign(t, key, with(c, "nbf", now.Add(2*time.Minute).Unix())), oauth.ReasonNotYetValid},
		{"issued in the future", authservertest.Sign(t, key, with(c, "iat", now.Add(2*time.Minute).Unix())), oauth.ReasonNotYetValid},
		{"wrong audience", authservertest.Sign(t, key, with(c, "aud", "http://127.0.0.1:9998/")), oauth.ReasonAudience},
		{"audience a path below", authservertest.Sign(t, key, with(c, "aud", resource+"other")), oauth.ReasonAudience},
		{"no audience", authservertest.Sign(t, key, with(c, "aud", nil)), oauth.ReasonAudience},
		{"one of several audiences", authservertest.Sign(t, key, with(c, "aud", []string{"urn:other", resource})), ""},
		{"wrong issuer", authservertest.Sign(t, key, with(c, "iss", "http://127.0.0.1:1/")), oauth.ReasonIssuer},
		{"alg none", authservertest.SignNone(c, key.KeyID), oauth.ReasonAlgorithm},
		{"HMAC with the public key", authservertest.SignHMACWithPublicKey(t, key, c), oauth.ReasonAlgorithm},
		{"another key under the server's kid", authservertest.Sign(t, forged, c), oauth.ReasonSignature},
		{"unknown kid", authservertest.Sign(t, authservertest.NewKey(t), c), oauth.ReasonUnknownKey},
		{"neither sub nor client_id", authservertest.Sign(t, key, with(with(c, "sub", nil), "client_id", nil)), oauth.ReasonNoSubject},
		{"empty sub, no client_id", authservertest.Sign(t, key, with(with(c, "sub", ""), "client_id", nil)), oauth.ReasonNoSubject},
		{"no sub, a client_id", authservertest.Sign(t, key, with(c, "sub", nil)), ""},
		{"signature cut", authservertest.Sign(t, key, c) + "x", oauth.ReasonSignature},
		{"garbage", "a.b.c", oauth.ReasonMalformed},
		{"opaque without introspection", "abcdef", oauth.ReasonOpaqueNoIntr},
		{"too large", strings.Repeat("a", oauth.DefaultMaxTokenBytes+1), oauth.ReasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tc.token, resource)
			if got := reason(err); got != tc.want {
				t.Fatalf("reason %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
}

func reason(err error) oauth.Reason {
	if err == nil {
		return ""
	}
	return oauth.ReasonOf(err)
}

// TestOAuthKeyRotation: the server signs with a new key; the verifier,
// which cached the old key set, fetches it again on the unknown kid and
// accepts. A kid still unknown after that refresh is refused, and
// random kids do not make it fetch the keys again within the interval.
func TestOAuthKeyRotation(t *testing.T) {
	as := authservertest.Start(t)
	v := newVerifier(t, as, func(c *oauth.Config) { c.KeysMinRefresh = time.Hour })
	if _, err := v.Verify(t.Context(), as.Token(authservertest.Client, resource, "mcp:tools"), resource); err != nil {
		t.Fatal(err)
	}
	as.Rotate(true)
	// The interval is an hour: the rotation's kid is unknown and the
	// refresh is not allowed yet.
	_, err := v.Verify(t.Context(), as.Token(authservertest.Client, resource, "mcp:tools"), resource)
	if reason(err) != oauth.ReasonUnknownKey {
		t.Fatalf("within the refresh interval: %v, want unknown_key", err)
	}
	v = newVerifier(t, as, func(c *oauth.Config) { c.KeysMinRefresh = 50 * time.Millisecond })
	if _, err := v.Verify(t.Context(), as.Token(authservertest.Client, resource, "mcp:tools"), resource); err != nil {
		t.Fatalf("a token signed with the rotated key: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	newKey := as.Rotate(true)
	for {
		_, err := v.Verify(t.Context(), authservertest.Sign(t, newKey, claims(as)), resource)
		if err == nil {
			break
		}
		if reason(err) != oauth.ReasonUnknownKey || time.Now().After(deadline) {
			t.Fatalf("after a second rotation: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the refresh interval passes
	}
	fetches := as.Stats().JWKS
	stranger := authservertest.NewKey(t)
	for i := range 50 {
		stranger.KeyID = fmt.Sprintf("random-%d", i)
		_, err := v.Verify(t.Context(), authservertest.Sign(t, stranger, claims(as)), resource)
		if r := reason(err); r != oauth.ReasonUnknownKey {
			t.Fatalf("random kid: %v", err)
		}
	}
	if got := as.Stats().JWKS - fetches; got > 50 {
		t.Errorf("50 random kids made %d key fetches", got)
	}
}

// TestOAuthRandomKidsRateLimited: with the default interval, any number
// of tokens with random kids cost the server one key fetch.
func TestOAuthRandomKidsRateLimited(t *testing.T) {
	as := authservertest.Start(t)
	v := newVerifier(t, as, nil)
	stranger := authservertest.NewKey(t)
	for i := range 100 {
		stranger.KeyID = fmt.Sprintf("random-%d", i)
		_, err := v.Verify(t.Context(), authservertest.Sign(t, stranger, claims(as)), resource)
		if reason(err) != oauth.ReasonUnknownKey {
			t.Fatalf("random kid: %v", err)
		}
	}
	if got := as.Stats().JWKS; got != 1 {
		t.Errorf("100 random kids made %d key fetches, want 1", got)
	}
}

// TestOAuthServerDown: with the authorization server down and no keys
// in hand, nothing is let through, and the refusal says the server is
// unavailable (503), not that the token is bad.
func TestOAuthServerDown(t *testing.T) {
	as := authservertest.Start(t)
	tok := as.Token(authservertest.Client, resource, "mcp:tools")
	as.Stop()
	v := newVerifier(t, as, func(c *oauth.Config) { c.Timeout = 2 * time.Second })
	_, err := v.Verify(t.Context(), tok, resource)
	var e *oauth.Error
	if !errors.As(err, &e) || !e.Unavailable() {
		t.Fatalf("server down: %v, want unavailable", err)
	}
	// Back up: after the retry interval, the same token is accepted.
	as.Restart()
	v = newVerifier(t, as, func(c *oauth.Config) { c.KeysMinRefresh = 50 * time.Millisecond })
	if _, err := v.Verify(t.Context(), tok, resource); err != nil {
		t.Fatalf("server back: %v", err)
	}
	// Down again with the keys in hand: a token with a kid the cache
	// does not know cannot be decided.
	// (Within the refresh interval such a kid is refused from the cache;
	// once it has passed, the refresh fails.)
	as.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = v.Verify(context.Background(), authservertest.Sign(t, authservertest.NewKey(t), claims(as)), resource)
		if errors.As(err, &e) && e.Unavailable() {
			break
		}
		if reason(err) != oauth.ReasonUnknownKey || time.Now().After(deadline) {
			t.Fatalf("unknown kid while down: %v, want unavailable", err)
		}
		time.Sleep(20 * time.Millisecond) // the refresh interval passes
	}
}

func TestOAuthIntrospection(t *testing.T) {
	as := authservertest.Start(t)
	v := newVerifier(t, as, func(c *oauth.Config) {
		c.IntrospectionClientID, c.IntrospectionClientSecret = authservertest.IntrospectClient, authservertest.IntrospectSecret
	})
	opaque := as.Token(authservertest.OpaqueClient, resource, "mcp:tools")
	if strings.Count(opaque, ".") == 2 {
		t.Fatalf("the opaque client got a JWT: %s", opaque)
	}
	tok, err := v.Verify(t.Context(), opaque, resource)
	if err != nil {
		t.Fatalf("opaque token: %v", err)
	}
	if tok.Subject != authservertest.OpaqueClient || !tok.HasScopes([]string{"mcp:tools"}) {
		t.Errorf("token: %+v", tok)
	}
	n := as.Stats().Introspection
	if _, err := v.Verify(t.Context(), opaque, resource); err != nil {
		t.Fatal(err)
	}
	if got := as.Stats().Introspection; got != n {
		t.Errorf("a second use of the token was introspected again (%d, was %d)", got, n)
	}
	other := as.Token(authservertest.OpaqueClient, "http://127.0.0.1:9998/", "mcp:tools")
	if _, err := v.Verify(t.Context(), other, resource); reason(err) != oauth.ReasonAudience {
		t.Errorf("an opaque token for another resource: %v, want audience", err)
	}
	if _, err := v.Verify(t.Context(), "not-a-token-the-server-issued", resource); reason(err) != oauth.ReasonInactive {
		t.Errorf("an unknown opaque token: %v, want inactive", err)
	}
	as.Stop()
	if _, err := v.Verify(t.Context(), "another-opaque-token", resource); reason(err) != oauth.ReasonUnavailable {
		t.Errorf("introspection while the server is down: %v, want unavailable", err)
	}
}

// TestOAuthTokenCacheNeverPastExp: an accepted token is taken again from
// the cache, but never after its exp: the clock moves past it and the
// same token is refused.
func TestOAuthTokenCacheNeverPastExp(t *testing.T) {
	as := authservertest.Start(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	v := newVerifier(t, as, func(c *oauth.Config) { c.Now, c.TokenCache = clock, time.Hour })
	tok := authservertest.Sign(t, as.SigningKey(), with(claims(as), "exp", now.Add(10*time.Second).Unix()))
	if _, err := v.Verify(t.Context(), tok, resource); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tok, "http://127.0.0.1:9998/"); reason(err) != oauth.ReasonAudience {
		t.Fatalf("the cached token on another resource: %v, want audience", err)
	}
	if _, err := v.Verify(t.Context(), tok, resource); err != nil {
		t.Fatalf("the cached token again: %v", err)
	}
	mu.Lock()
	now = now.Add(oauth.DefaultLeeway + time.Minute)
	mu.Unlock()
	if _, err := v.Verify(t.Context(), tok, resource); reason(err) != oauth.ReasonExpired {
		t.Fatalf("a cached token past its exp: %v, want expired", err)
	}
}

// TestOAuthFetchOutlivesTheRequest: the request that makes the verifier
// fetch the metadata and keys may be gone already (its client hung up);
// the fetch is everyone's, so it still completes and the next request is
// decided with its keys instead of being refused until the next attempt.
func TestOAuthFetchOutlivesTheRequest(t *testing.T) {
	as := authservertest.Start(t)
	v := newVerifier(t, as, func(c *oauth.Config) { c.KeysMinRefresh = time.Hour })
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	tok := authservertest.Sign(t, as.SigningKey(), claims(as))
	_, _ = v.Verify(gone, tok, resource)
	if _, err := v.Verify(t.Context(), tok, resource); err != nil {
		t.Fatalf("after a request that was gone when it started the fetch: %v", err)
	}
}
