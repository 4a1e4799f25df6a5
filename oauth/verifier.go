package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Config is how a Verifier reaches the authorization server and what it
// accepts. Zero fields take the defaults named.
type Config struct {
	// Issuer is the authorization server's issuer identifier: its
	// metadata is found from it, and tokens must carry it as iss.
	Issuer string
	// Algorithms are the signature algorithms accepted (default
	// DefaultAlgorithms). none and the HMAC algorithms are never
	// accepted, whatever this says: a resource server holds no secret
	// shared with the authorization server.
	Algorithms []jose.SignatureAlgorithm
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// MaxTokenBytes bounds a token (default 8KiB).
	MaxTokenBytes int
	// MaxDocumentBytes bounds every document fetched from the
	// authorization server (default 256KiB).
	MaxDocumentBytes int64
	// Timeout bounds each request to the authorization server (default 5s).
	Timeout time.Duration
	// KeysMinRefresh is the least time between two fetches of the key
	// set (default 30s); KeysMaxAge is how long a key set is used
	// before it is fetched again (default 10m); KeysDropAfter is how
	// long after the last successful fetch the keys in hand are still
	// used while fetching fails (default 24h).
	KeysMinRefresh, KeysMaxAge, KeysDropAfter time.Duration
	// IntrospectionClientID and IntrospectionClientSecret, when set,
	// make tokens that are not JWTs go to the server's introspection
	// endpoint (RFC 7662), authenticated as that client.
	IntrospectionClientID, IntrospectionClientSecret string
	// IntrospectionCache is how long an active introspection answer is
	// reused (default 30s, never past the token's exp; negative: never).
	IntrospectionCache time.Duration
	// TokenCache is how long an accepted JWT is taken as accepted again
	// without checking its signature (default 1m, never past its exp;
	// negative: never). A key the server withdraws is thus honoured at
	// most this long after the key set is fetched again.
	TokenCache time.Duration
	// HTTPClient, if set, is used to reach the authorization server
	// (its Timeout is then the caller's business).
	HTTPClient *http.Client
	// Now is the clock (default time.Now); for tests.
	Now func() time.Time
}

// DefaultAlgorithms are the asymmetric JWS algorithms of RFC 7518 and
// EdDSA: what authorization servers sign access tokens with.
var DefaultAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Defaults of Config.
const (
	DefaultLeeway           = 30 * time.Second
	DefaultMaxTokenBytes    = 8 << 10
	DefaultMaxDocumentBytes = 256 << 10
	DefaultTimeout          = 5 * time.Second
	DefaultKeysMinRefresh   = 30 * time.Second
	DefaultKeysMaxAge       = 10 * time.Minute
	DefaultKeysDropAfter    = 24 * time.Hour
	DefaultIntrospectCache  = 30 * time.Second
	DefaultTokenCache       = time.Minute
)

// Token is an accepted access token: who it speaks for and what it
// allows.
type Token struct {
	// Subject is sub, or client_id when the token has no sub (some
	// introspection answers for client_credentials tokens).
	Subject  string
	ClientID string
	Scopes   []string
	Expiry   time.Time
	// Claims are all the token's claims (of the JWT, or of the
	// introspection answer).
	Claims map[string]any
}

// Verifier decides whether access tokens may be used on a resource.
// It is safe for concurrent use.
type Verifier struct {
	cfg   Config
	algs  []jose.SignatureAlgorithm
	fetch *fetcher
	keys  *keyCache
	// introspected and verified hold accepted opaque and JWT tokens.
	introspected, verified *tokenCache
	mdMu                   sync.Mutex
	md                     *ServerMetadata
	mdTried                time.Time
}

// NewVerifier checks cfg and returns a Verifier. It does not reach the
// authorization server: that happens on the first token, so a server
// that is down at start delays nothing but the requests that need it.
func NewVerifier(cfg Config) (*Verifier, error) {
	if _, err := MetadataURLs(cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MaxTokenBytes <= 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if cfg.MaxDocumentBytes <= 0 {
		cfg.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.KeysMinRefresh = orDefault(cfg.KeysMinRefresh, DefaultKeysMinRefresh)
	cfg.KeysMaxAge = orDefault(cfg.KeysMaxAge, DefaultKeysMaxAge)
	cfg.KeysDropAfter = orDefault(cfg.KeysDropAfter, DefaultKeysDropAfter)
	if cfg.IntrospectionCache == 0 {
		cfg.IntrospectionCache = DefaultIntrospectCache
	}
	if cfg.TokenCache == 0 {
		cfg.TokenCache = DefaultTokenCache
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	algs, err := allowedAlgorithms(cfg.Algorithms)
	if err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	v := &Verifier{cfg: cfg, algs: algs, fetch: &fetcher{client: client, maxBytes: cfg.MaxDocumentBytes}}
	v.keys = &keyCache{load: v.loadKeys, minInterval: cfg.KeysMinRefresh, maxAge: cfg.KeysMaxAge,
		dropAfter: cfg.KeysDropAfter, now: cfg.Now}
	v.introspected, v.verified = newTokenCache(cfg.Now), newTokenCache(cfg.Now)
	return v, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// allowedAlgorithms checks a configured list: only asymmetric signature
// algorithms may be in it.
func allowedAlgorithms(list []jose.SignatureAlgorithm) ([]jose.SignatureAlgorithm, error) {
	if len(list) == 0 {
		return DefaultAlgorithms, nil
	}
	for _, a := range list {
		if !isAsymmetric(a) {
			return nil, fmt.Errorf("algorithm %q is not allowed: only asymmetric signature algorithms (RS*, PS*, ES*, EdDSA)", a)
		}
	}
	return list, nil
}

func isAsymmetric(a jose.SignatureAlgorithm) bool {
	for _, d := range DefaultAlgorithms {
		if a == d {
			return true
		}
	}
	return false
}

// Issuer is the authorization server's issuer identifier.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

// metadata is the authorization server's metadata, fetched on first use
// and after a failure at most once per KeysMinRefresh.
func (v *Verifier) metadata(ctx context.Context) (*ServerMetadata, error) {
	v.mdMu.Lock()
	defer v.mdMu.Unlock()
	if v.md != nil {
		return v.md, nil
	}
	now := v.cfg.Now()
	if !v.mdTried.IsZero() && now.Sub(v.mdTried) < v.cfg.KeysMinRefresh {
		return nil, refuse(ReasonUnavailable, errors.New("the authorization server's metadata could not be fetched; trying again shortly"))
	}
	v.mdTried = now
	ctx, cancel := v.detached(ctx)
	defer cancel()
	md, err := v.fetch.discover(ctx, v.cfg.Issuer)
	if err != nil {
		return nil, refuse(ReasonUnavailable, err)
	}
	v.md = md
	return md, nil
}

// detached is the context of a fetch whose result every request shares
// (the metadata, the keys): not ended by the request that happened to
// start it, or a client that hangs up at once would make the attempt
// fail for everyone until the next one is allowed; bounded by the
// timeout of the requests it makes instead.
func (v *Verifier) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 4*v.cfg.Timeout)
}

// loadKeys fetches the key set the metadata names.
func (v *Verifier) loadKeys(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := v.detached(ctx)
	defer cancel()
	md, err := v.metadata(ctx)
	if err != nil {
		return nil, err
	}
	if md.JWKSURI == "" {
		return nil, errors.New("the authorization server's metadata names no jwks_uri")
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := v.fetch.getJSON(ctx, md.JWKSURI, &set); err != nil {
		return nil, err
	}
	return parseKeySet(set.Keys), nil
}

// Verify decides whether token may be used on resource, the canonical
// URI of this protected resource. A refusal is an *Error.
func (v *Verifier) Verify(ctx context.Context, token, resource string) (*Token, error) {
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, refuse(ReasonTooLarge, fmt.Errorf("%d bytes, more than %d", len(token), v.cfg.MaxTokenBytes))
	}
	if strings.Count(token, ".") == 2 {
		if v.cfg.TokenCache < 0 {
			return v.verifyJWT(ctx, token, resource)
		}
		key := sha256.Sum256([]byte(token))
		if t := v.verified.get(key, resource); t != nil {
			return t, nil
		}
		t, err := v.verifyJWT(ctx, token, resource)
		if err == nil {
			v.verified.put(key, resource, t, v.cfg.Now().Add(v.cfg.TokenCache))
		}
		return t, err
	}
	if v.cfg.IntrospectionClientID == "" {
		return nil, refuse(ReasonOpaqueNoIntr, errors.New("not a JWT, and no introspection is configured"))
	}
	return v.introspect(ctx, token, resource)
}

// HasScopes reports whether the token grants every one of required.
func (t *Token) HasScopes(required []string) bool {
	for _, r := range required {
		if !slices.Contains(t.Scopes, r) {
			return false
		}
	}
	return true
}
