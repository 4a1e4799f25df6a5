package authservertest

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Sign makes a compact JWT of claims signed with key (RS256), with
// key's kid in its header and typ at+jwt, as the server's own tokens.
func Sign(t testing.TB, key jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("at+jwt")
	if key.KeyID != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), key.KeyID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key.Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// SignNone is an unsigned token (alg none) with kid in its header: what
// go-jose would never make, so made by hand.
func SignNone(claims map[string]any, kid string) string {
	h, _ := json.Marshal(map[string]any{"alg": "none", "kid": kid, "typ": "at+jwt"})
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

// SignHMACWithPublicKey is the classic forgery: HS256 keyed with the
// bytes of key's public half (anyone can read them from the server's
// JWKS), under key's kid.
func SignHMACWithPublicKey(t testing.TB, key jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	pub := key.Public()
	der, err := x509.MarshalPKIXPublicKey(pub.Key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: der}, (&jose.SignerOptions{}).WithHeader("kid", key.KeyID))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
