package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The names RFC 8693 gives the grant and the token types.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
)

// Defaults and bounds of an Exchanger.
const (
	// DefaultMaxExchangedTokenBytes bounds the token the server issues.
	DefaultMaxExchangedTokenBytes = 16 << 10
	// DefaultExchangeMargin is taken off an exchanged token's life in the
	// cache, so the upstream never gets one about to expire.
	DefaultExchangeMargin = 30 * time.Second
	// DefaultExchangeLifetime is how long an exchanged token whose answer
	// has no expires_in is reused (never past the client's token's exp).
	DefaultExchangeLifetime = time.Minute
	// maxExchanged and maxExchangedBytes bound the cache; when either
	// would be passed, it is cleared whole.
	maxExchanged      = 4096
	maxExchangedBytes = 16 << 20
	// FailureHold is how long a failed exchange is answered from memory
	// for the same client token (the Retry-After mcp_auth sends): a
	// client repeating a request whose exchange fails costs the server
	// one call per hold, not one per request, and cannot get the shared
	// exchange client rate-limited for everyone.
	FailureHold = 5 * time.Second
	// MaxExchangesInFlight bounds the exchanges under way at once (each
	// holds a connection and a goroutine for up to the timeout while the
	// server hangs); beyond it a call fails at once as unavailable.
	MaxExchangesInFlight = 64
)

// ExchangeConfig is the token exchange (RFC 8693) an Exchanger performs:
// the client's token for one of the downstream resource's.
type ExchangeConfig struct {
	// ClientID and ClientSecret authenticate to the token endpoint
	// (client_secret_basic). Required.
	ClientID, ClientSecret string
	// Resource is the downstream resource's URI (RFC 8707 resource);
	// Audience its logical name (RFC 8693 audience). One is required.
	Resource, Audience string
	// Scopes asked for; none: the server decides.
	Scopes []string
	// MaxTokenBytes bounds the issued token (default
	// DefaultMaxExchangedTokenBytes).
	MaxTokenBytes int
	// Margin is taken off the issued token's life in the cache (default
	// DefaultExchangeMargin).
	Margin time.Duration
}

// Exchanged is a token the authorization server issued for the
// downstream resource in exchange for a client's.
type Exchanged struct {
	AccessToken string
	// Expiry is when the server said it expires; zero if it did not say.
	Expiry time.Time
	// Shared is true when no exchange was made for this call: the token
	// came from the cache, or from an exchange another call made for the
	// same client token at the same time.
	Shared bool
}

// Exchanger trades accepted client tokens for tokens of the downstream
// resource at the authorization server's token endpoint, which it finds
// in the metadata the Verifier fetches. Each client token is exchanged
// once while its exchanged token lasts: the result is cached (by the
// hash of the client's token), and concurrent calls for one client token
// wait for one exchange. It is safe for concurrent use.
type Exchanger struct {
	v   *Verifier
	cfg ExchangeConfig

	mu      sync.Mutex
	cache   map[[32]byte]exchangedEntry
	bytes   int
	flights map[[32]byte]*flight
	// failed holds the failures of the last FailureHold, by client token.
	failed map[[32]byte]failedExchange
}

type failedExchange struct {
	err   error
	until time.Time
}

type exchangedEntry struct {
	token  string
	expiry time.Time
	until  time.Time
}

// flight is an exchange under way; those who arrive meanwhile wait for
// done and share its result.
type flight struct {
	done    chan struct{}
	res     *Exchanged
	err     error
	waiters int
}

// NewExchanger checks cfg and returns an Exchanger asking v's
// authorization server.
func (v *Verifier) NewExchanger(cfg ExchangeConfig) (*Exchanger, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("token exchange needs a client_id and a client_secret")
	}
	if cfg.Resource == "" && cfg.Audience == "" {
		return nil, errors.New("token exchange needs a resource or an audience")
	}
	if cfg.Resource != "" {
		if _, ok := CanonicalResource(cfg.Resource); !ok {
			return nil, fmt.Errorf("token exchange resource %q is not an absolute URI without fragment", cfg.Resource)
		}
	}
	if cfg.MaxTokenBytes <= 0 {
		cfg.MaxTokenBytes = DefaultMaxExchangedTokenBytes
	}
	if cfg.Margin <= 0 {
		cfg.Margin = DefaultExchangeMargin
	}
	return &Exchanger{v: v, cfg: cfg, cache: make(map[[32]byte]exchangedEntry), flights: make(map[[32]byte]*flight),
		failed: make(map[[32]byte]failedExchange)}, nil
}

// Exchange returns a token of the downstream resource for subjectToken,
// a client token the Verifier accepted, which expires at subjectExpiry
// (zero: unknown). A failure is an *Error: ReasonExchangeRefused when the
// server refused the exchange (4xx), ReasonExchangeUnavailable when it
// could not be asked or answered with nothing usable.
func (x *Exchanger) Exchange(ctx context.Context, subjectToken string, subjectExpiry time.Time) (*Exchanged, error) {
	key := sha256.Sum256([]byte(subjectToken))
	x.mu.Lock()
	if e, ok := x.cache[key]; ok {
		if x.v.cfg.Now().Before(e.until) {
			x.mu.Unlock()
			return &Exchanged{AccessToken: e.token, Expiry: e.expiry, Shared: true}, nil
		}
		x.dropLocked(key)
	}
	if e, ok := x.failed[key]; ok {
		if x.v.cfg.Now().Before(e.until) {
			x.mu.Unlock()
			return nil, e.err
		}
		delete(x.failed, key)
	}
	if f, ok := x.flights[key]; ok {
		f.waiters++
		x.mu.Unlock()
		select {
		case <-f.done:
			if f.err != nil {
				return nil, f.err
			}
			res := *f.res
			res.Shared = true
			return &res, nil
		case <-ctx.Done():
			return nil, refuse(ReasonExchangeUnavailable, ctx.Err())
		}
	}
	if len(x.flights) >= MaxExchangesInFlight {
		x.mu.Unlock()
		return nil, refuse(ReasonExchangeUnavailable, fmt.Errorf("%d token exchanges are under way already", MaxExchangesInFlight))
	}
	f := &flight{done: make(chan struct{})}
	x.flights[key] = f
	x.mu.Unlock()

	res, until, err := x.exchange(ctx, subjectToken, subjectExpiry)

	x.mu.Lock()
	delete(x.flights, key)
	switch {
	case err == nil && x.v.cfg.Now().Before(until):
		x.putLocked(key, exchangedEntry{token: res.AccessToken, expiry: res.Expiry, until: until})
	case err != nil:
		if len(x.failed) >= maxExchanged {
			clear(x.failed)
		}
		x.failed[key] = failedExchange{err: err, until: x.v.cfg.Now().Add(FailureHold)}
	}
	f.res, f.err = res, err
	close(f.done)
	x.mu.Unlock()
	return res, err
}

func (x *Exchanger) dropLocked(key [32]byte) {
	if e, ok := x.cache[key]; ok {
		x.bytes -= len(e.token)
		delete(x.cache, key)
	}
}

func (x *Exchanger) putLocked(key [32]byte, e exchangedEntry) {
	x.dropLocked(key)
	if len(x.cache) >= maxExchanged || x.bytes+len(e.token) > maxExchangedBytes {
		clear(x.cache)
		x.bytes = 0
	}
	x.cache[key] = e
	x.bytes += len(e.token)
}

// exchangeAnswer is what RFC 8693 section 2.2.1 answers.
type exchangeAnswer struct {
	AccessToken     string          `json:"access_token"`
	IssuedTokenType string          `json:"issued_token_type"`
	TokenType       string          `json:"token_type"`
	ExpiresIn       json.RawMessage `json:"expires_in"`
}

// exchange asks the token endpoint; until is how long the result may be
// reused.
func (x *Exchanger) exchange(ctx context.Context, subjectToken string, subjectExpiry time.Time) (*Exchanged, time.Time, error) {
	// Not ended by the request that started it: others may be waiting
	// for the result. Bounded by the timeout instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.v.cfg.Timeout)
	defer cancel()
	md, err := x.v.metadata(ctx)
	if err != nil {
		return nil, time.Time{}, refuse(ReasonExchangeUnavailable, err)
	}
	if md.TokenEndpoint == "" {
		return nil, time.Time{}, refuse(ReasonExchangeUnavailable, errors.New("the authorization server's metadata names no token_endpoint"))
	}
	form := url.Values{
		"grant_type":           {GrantTypeTokenExchange},
		"subject_token":        {subjectToken},
		"subject_token_type":   {TokenTypeAccessToken},
		"requested_token_type": {TokenTypeAccessToken},
	}
	if x.cfg.Resource != "" {
		form.Set("resource", x.cfg.Resource)
	}
	if x.cfg.Audience != "" {
		form.Set("audience", x.cfg.Audience)
	}
	if len(x.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(x.cfg.Scopes, " "))
	}
	var ans exchangeAnswer
	if err := x.v.fetch.postForm(ctx, md.TokenEndpoint, form.Encode(), x.cfg.ClientID, x.cfg.ClientSecret, &ans); err != nil {
		var se *statusError
		if errors.As(err, &se) && se.code >= 400 && se.code < 500 && se.code != http.StatusRequestTimeout && se.code != http.StatusTooManyRequests {
			return nil, time.Time{}, refuse(ReasonExchangeRefused, err)
		}
		return nil, time.Time{}, refuse(ReasonExchangeUnavailable, err)
	}
	if err := x.usable(&ans); err != nil {
		return nil, time.Time{}, refuse(ReasonExchangeUnavailable, err)
	}
	now := x.v.cfg.Now()
	res := &Exchanged{AccessToken: ans.AccessToken}
	until := now.Add(DefaultExchangeLifetime)
	if secs, ok := expiresIn(ans.ExpiresIn); ok {
		res.Expiry = now.Add(time.Duration(secs) * time.Second)
		until = res.Expiry
	}
	if !subjectExpiry.IsZero() && subjectExpiry.Before(until) {
		until = subjectExpiry
	}
	return res, until.Add(-x.cfg.Margin), nil
}

// usable checks that the answer carries a bearer access token that fits
// the bound and can be put in a header as it is.
func (x *Exchanger) usable(ans *exchangeAnswer) error {
	switch {
	case ans.AccessToken == "":
		return errors.New("the token endpoint's answer has no access_token")
	case len(ans.AccessToken) > x.cfg.MaxTokenBytes:
		return fmt.Errorf("the exchanged token has %d bytes, more than %d", len(ans.AccessToken), x.cfg.MaxTokenBytes)
	case !isB64Token(ans.AccessToken):
		return errors.New("the exchanged token is not a b64token")
	case ans.TokenType != "" && !strings.EqualFold(ans.TokenType, "Bearer"):
		return fmt.Errorf("the exchanged token is of token_type %s, not Bearer", quoteBounded(ans.TokenType))
	case ans.IssuedTokenType != "" && ans.IssuedTokenType != TokenTypeAccessToken && ans.IssuedTokenType != TokenTypeJWT:
		return fmt.Errorf("the exchanged token is of issued_token_type %s, not an access token", quoteBounded(ans.IssuedTokenType))
	}
	return nil
}

// expiresIn reads expires_in, a number of seconds (some servers write it
// as a string), at most a year; ok is false when it is missing or not
// positive.
func expiresIn(raw json.RawMessage) (int64, bool) {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		n = json.Number(s)
	}
	secs, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(n.String(), 64)
		if ferr != nil {
			return 0, false
		}
		secs = int64(f)
	}
	if secs <= 0 {
		return 0, false
	}
	return min(secs, 366*24*3600), true
}
