package oauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// verifyJWT checks a JWT access token (RFC 9068): an allowed algorithm,
// a signature by one of the authorization server's keys, and its claims.
// The signature is checked by go-jose against the list of algorithms we
// allow, never the one the token names alone: "none" and the HMAC
// algorithms (with which a forger signs using our public key as the
// secret) are refused before any key is looked at.
func (v *Verifier) verifyJWT(ctx context.Context, token, resource string) (*Token, error) {
	sig, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		if alg := headerAlg(token); alg != "" && !slices.Contains(v.algs, jose.SignatureAlgorithm(alg)) {
			return nil, refuse(ReasonAlgorithm, fmt.Errorf("alg %s is not allowed", quoteBounded(alg)))
		}
		return nil, refuse(ReasonMalformed, err)
	}
	if len(sig.Signatures) != 1 {
		return nil, refuse(ReasonMalformed, errors.New("not one signature"))
	}
	hdr := sig.Signatures[0].Header
	key, err := v.keys.find(ctx, hdr.KeyID, hdr.Algorithm)
	if err != nil {
		return nil, err
	}
	payload, err := sig.Verify(key.Key)
	if err != nil {
		return nil, refuse(ReasonSignature, err)
	}
	var std jwt.Claims
	all, err := decodeClaims(payload, &std)
	if err != nil {
		return nil, refuse(ReasonMalformed, err)
	}
	if err := v.checkClaims(&std, resource); err != nil {
		return nil, err
	}
	return newToken(std.Subject, all, std.Expiry.Time())
}

// decodeClaims decodes a JSON object of claims twice: into typed, for the
// claims checked, and into a map of them all (numbers kept as written),
// which the handler turns into placeholders.
func decodeClaims(raw []byte, typed any) (map[string]any, error) {
	if err := json.Unmarshal(raw, typed); err != nil {
		return nil, err
	}
	var all map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&all); err != nil {
		return nil, err
	}
	return all, nil
}

// checkClaims checks iss, aud, exp, nbf and iat against this resource and
// the clock, with the configured leeway. exp is required (RFC 9068).
func (v *Verifier) checkClaims(c *jwt.Claims, resource string) error {
	if c.Issuer != v.cfg.Issuer {
		return refuse(ReasonIssuer, fmt.Errorf("iss %s is not %q", quoteBounded(c.Issuer), v.cfg.Issuer))
	}
	if !AudienceNames([]string(c.Audience), resource) {
		return refuse(ReasonAudience, fmt.Errorf("aud does not name %s", resource))
	}
	now := v.cfg.Now()
	if c.Expiry == nil {
		return refuse(ReasonExpired, errors.New("no exp"))
	}
	if now.After(c.Expiry.Time().Add(v.cfg.Leeway)) {
		return refuse(ReasonExpired, fmt.Errorf("expired at %s", c.Expiry.Time().UTC().Format(time.RFC3339)))
	}
	if c.NotBefore != nil && now.Add(v.cfg.Leeway).Before(c.NotBefore.Time()) {
		return refuse(ReasonNotYetValid, fmt.Errorf("not valid before %s", c.NotBefore.Time().UTC().Format(time.RFC3339)))
	}
	if c.IssuedAt != nil && now.Add(v.cfg.Leeway).Before(c.IssuedAt.Time()) {
		return refuse(ReasonNotYetValid, fmt.Errorf("issued in the future, at %s", c.IssuedAt.Time().UTC().Format(time.RFC3339)))
	}
	return nil
}

// newToken is the Token of the claims all; subject is sub if known. A
// token that names no one (neither sub nor client_id) is refused: its
// identity would be empty, which the handlers behind take for "no
// authentication", so mcp_sse would bind its sessions to no one.
func newToken(subject string, all map[string]any, exp time.Time) (*Token, error) {
	clientID, _ := all["client_id"].(string)
	if subject == "" {
		subject = clientID
	}
	if subject == "" {
		return nil, refuse(ReasonNoSubject, errors.New("neither sub nor client_id"))
	}
	return &Token{Subject: subject, ClientID: clientID, Scopes: scopesOf(all), Expiry: exp, Claims: all}, nil
}

// scopesOf reads scope (RFC 9068, RFC 7662: space-separated) or, failing
// that, scp (a list, as some servers write it).
func scopesOf(claims map[string]any) []string {
	if s, ok := claims["scope"].(string); ok {
		return strings.Fields(s)
	}
	switch scp := claims["scp"].(type) {
	case string:
		return strings.Fields(scp)
	case []any:
		out := make([]string, 0, len(scp))
		for _, s := range scp {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// headerAlg is the alg a compact JWS's header names, or "" if it cannot
// be read; only used to say why go-jose refused a token.
func headerAlg(token string) string {
	head, _, ok := strings.Cut(token, ".")
	if !ok || len(head) > 4<<10 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return ""
	}
	return h.Alg
}
