package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/url"
	"time"
)

// introspectionAnswer is what RFC 7662 section 2.2 answers; aud may be a
// string or a list.
type introspectionAnswer struct {
	Active bool            `json:"active"`
	Iss    string          `json:"iss"`
	Aud    json.RawMessage `json:"aud"`
	Exp    int64           `json:"exp"`
	Nbf    int64           `json:"nbf"`
	Sub    string          `json:"sub"`
}

// introspect asks the authorization server about an opaque token, and
// holds the answer to the same checks as a JWT's claims: active, iss,
// aud naming this resource (an answer without aud is refused: nothing
// then shows that the token was meant for us), exp, nbf.
func (v *Verifier) introspect(ctx context.Context, token, resource string) (*Token, error) {
	key := sha256.Sum256([]byte(token))
	if t := v.introspected.get(key, resource); t != nil {
		return t, nil
	}
	md, err := v.metadata(ctx)
	if err != nil {
		return nil, err
	}
	if md.IntrospectionEndpoint == "" {
		return nil, refuse(ReasonUnavailable, errors.New("the authorization server's metadata names no introspection_endpoint"))
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}.Encode()
	var raw json.RawMessage
	if err := v.fetch.postForm(ctx, md.IntrospectionEndpoint, form, v.cfg.IntrospectionClientID, v.cfg.IntrospectionClientSecret, &raw); err != nil {
		return nil, refuse(ReasonUnavailable, err)
	}
	var ans introspectionAnswer
	all, err := decodeClaims(raw, &ans)
	if err != nil {
		return nil, refuse(ReasonUnavailable, err)
	}
	if !ans.Active {
		return nil, refuse(ReasonInactive, nil)
	}
	if ans.Iss != "" && ans.Iss != v.cfg.Issuer {
		return nil, refuse(ReasonIssuer, errors.New("introspection names iss "+quoteBounded(ans.Iss)))
	}
	if !AudienceNames(audiences(ans.Aud), resource) {
		return nil, refuse(ReasonAudience, errors.New("introspection's aud does not name "+resource))
	}
	now := v.cfg.Now()
	if ans.Exp != 0 && now.After(time.Unix(ans.Exp, 0).Add(v.cfg.Leeway)) {
		return nil, refuse(ReasonExpired, nil)
	}
	if ans.Nbf != 0 && now.Add(v.cfg.Leeway).Before(time.Unix(ans.Nbf, 0)) {
		return nil, refuse(ReasonNotYetValid, nil)
	}
	var exp time.Time
	if ans.Exp != 0 {
		exp = time.Unix(ans.Exp, 0)
	}
	t, err := newToken(ans.Sub, all, exp)
	if err != nil {
		return nil, err
	}
	if v.cfg.IntrospectionCache > 0 {
		v.introspected.put(key, resource, t, now.Add(v.cfg.IntrospectionCache))
	}
	return t, nil
}

// audiences reads aud as a string or a list of strings.
func audiences(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var list []string
	_ = json.Unmarshal(raw, &list)
	return list
}
