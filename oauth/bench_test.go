package oauth_test

import (
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/authservertest"
	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

// BenchmarkVerifyCachedKeys is the per-request cost of mcp_auth's check
// of a JWT access token once the authorization server's keys are cached.
// signature: the token's first use (or token_cache off): parsing, the
// RS256 signature (2048-bit key, as the real server's), the claims.
// repeated: the same token again within token_cache, as every POST of a
// session sends it. The keys come from the real authorization server.
func BenchmarkVerifyCachedKeys(b *testing.B) {
	as := authservertest.Start(b)
	b.Run("signature", func(b *testing.B) { benchVerify(b, as, -1) })
	b.Run("repeated", func(b *testing.B) { benchVerify(b, as, 0) })
}

func benchVerify(b *testing.B, as *authservertest.Server, tokenCache time.Duration) {
	v, err := oauth.NewVerifier(oauth.Config{Issuer: as.Issuer(), TokenCache: tokenCache})
	if err != nil {
		b.Fatal(err)
	}
	tok := authservertest.Sign(b, as.SigningKey(), map[string]any{
		"iss": as.Issuer(), "sub": "alice", "aud": resource, "client_id": "mcp-client",
		"scope": "mcp:tools", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	if _, err := v.Verify(b.Context(), tok, resource); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(b.Context(), tok, resource); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefuseOversizedToken is what a 4 MiB Authorization header
// costs once it has reached the handler: a length comparison.
func BenchmarkRefuseOversizedToken(b *testing.B) {
	h := map[string][]string{"Authorization": {"Bearer " + string(make([]byte, 4<<20))}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := oauth.BearerToken(h, oauth.DefaultMaxTokenBytes); oauth.ReasonOf(err) != oauth.ReasonTooLarge {
			b.Fatal(err)
		}
	}
}

// BenchmarkExchangeCached is what token_exchange adds to a request whose
// client token was exchanged already: the cache lookup (a hash of the
// token and a map read under a lock).
func BenchmarkExchangeCached(b *testing.B) {
	as := authservertest.Start(b)
	v, err := oauth.NewVerifier(oauth.Config{Issuer: as.Issuer()})
	if err != nil {
		b.Fatal(err)
	}
	x, err := v.NewExchanger(oauth.ExchangeConfig{ClientID: authservertest.ExchangeClient, ClientSecret: authservertest.ExchangeSecret,
		Resource: authservertest.ExchangeResourcePrefix + "api"})
	if err != nil {
		b.Fatal(err)
	}
	tok := as.Token(authservertest.Client, resource, "mcp:tools")
	if _, err := x.Exchange(b.Context(), tok, time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res, err := x.Exchange(b.Context(), tok, time.Now().Add(time.Hour)); err != nil || !res.Shared {
			b.Fatal(res, err)
		}
	}
}
