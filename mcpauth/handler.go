// Package mcpauth is the mcp_auth Caddy handler: the OAuth 2.1 resource
// server the MCP specification asks of an HTTP server, in front of
// mcp_sse, mcp_stdio or any upstream. It is a thin layer over package
// oauth: it builds this resource's URI from the request's public scheme
// and host (Caddy's trusted_proxies decide whether X-Forwarded-* count),
// serves the Protected Resource Metadata, answers 401/403/503 with the
// challenge a client starts its login from, and hands an accepted
// request on with the identity set where Caddy's authentication sets it
// and the token removed.
package mcpauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/internal/access"
	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultIntrospectionCache is how long an introspection answer is reused.
const DefaultIntrospectionCache = 30 * time.Second

// Handler is the mcp_auth handler.
type Handler struct {
	// AuthorizationServer is the issuer identifier of the authorization
	// server (https://auth.example.com): its metadata is found from it
	// (RFC 8414, or OpenID discovery), tokens must carry it as iss, and
	// the Protected Resource Metadata names it. Required.
	AuthorizationServer string `json:"authorization_server,omitempty"`
	// Scopes a token must grant, every one; named in the challenge and
	// in scopes_supported. Default: none required.
	Scopes []string `json:"scopes,omitempty"`
	// Resource is this resource's URI, fixed. Default: built from each
	// request's public scheme and host, and ResourcePath, when that host
	// names this site (access.HostNamesThisSite; otherwise 421). Set it
	// where clients reach Caddy under a port or name it cannot see (a
	// port mapping, an untrusted proxy).
	Resource string `json:"resource,omitempty"`
	// ResourcePath is the path of the resource's URI (/mcp), when it is
	// not the site's origin; the metadata is then also served at the
	// path-suffixed well-known URI. Default: none.
	ResourcePath string `json:"resource_path,omitempty"`
	// ResourceName is the resource_name of the metadata. Default: none.
	ResourceName string `json:"resource_name,omitempty"`
	// Algorithms are the JWS algorithms accepted (default RS*, PS*, ES*,
	// EdDSA). Only asymmetric ones may be named; none and HMAC never.
	Algorithms []string `json:"algorithms,omitempty"`
	// Leeway is the clock skew allowed on exp, nbf, iat. Default 30s.
	Leeway caddy.Duration `json:"leeway,omitempty"`
	// MaxTokenSize bounds a token in bytes; a longer one is refused
	// before it is parsed. Default 8KiB.
	MaxTokenSize int64 `json:"max_token_size,omitempty"`
	// MaxDocumentSize bounds what is read of each document fetched from
	// the authorization server. Default 256KiB.
	MaxDocumentSize int64 `json:"max_document_size,omitempty"`
	// Timeout bounds each request to the authorization server. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// KeysMinRefresh is the least time between two fetches of the key
	// set, however many unknown kids arrive. Default 30s.
	KeysMinRefresh caddy.Duration `json:"keys_min_refresh,omitempty"`
	// KeysMaxAge is how long a fetched key set is used before it is
	// fetched again (in the background: requests go on with the keys in
	// hand meanwhile). Default 10m.
	KeysMaxAge caddy.Duration `json:"keys_max_age,omitempty"`
	// TokenCache is how long an accepted JWT is accepted again without
	// checking its signature, never past its exp. Default 1m; -1 (off in
	// the Caddyfile) never.
	TokenCache caddy.Duration `json:"token_cache,omitempty"`
	// Introspection, when set, sends tokens that are not JWTs to the
	// authorization server's introspection endpoint (RFC 7662).
	Introspection *Introspection `json:"introspection,omitempty"`
	// ForwardTokenHeader names a header that carries the client's
	// Authorization value on to the next handler. Default: none, the
	// token goes no further (the MCP specification forbids passing it
	// through). Naming Authorization keeps it where it was.
	ForwardTokenHeader string `json:"forward_token_header,omitempty"`
	// TokenExchange, when set, trades each accepted token for one of the
	// downstream resource at the authorization server (RFC 8693), which
	// goes on instead of the client's. Excludes ForwardTokenHeader.
	TokenExchange *TokenExchange `json:"token_exchange,omitempty"`

	verifier  *oauth.Verifier
	exchanger *oauth.Exchanger
	metaPath  string        // where the metadata is served (path-suffixed when ResourcePath is set)
	sites     *access.Sites // the host matchers on the way to the handler
	logger    *zap.Logger
}

// Introspection is how mcp_auth authenticates to the introspection
// endpoint (client_secret_basic).
type Introspection struct {
	ClientID string `json:"client_id,omitempty"`
	// ClientSecret may be a placeholder such as {env.MCP_INTROSPECTION_SECRET}.
	ClientSecret string `json:"client_secret,omitempty"`
	// Cache is how long an active answer is reused, never past the
	// token's exp. Default 30s; -1 (off in the Caddyfile) never.
	Cache caddy.Duration `json:"cache,omitempty"`
}

// checkResourceURI checks a resource URI: absolute, without query or
// fragment (RFC 8707 section 2), not even an empty one ("https://a/?",
// "https://a/#", which url.Parse reads as none but which would go to
// the authorization server as written).
func checkResourceURI(uri string) error {
	u, err := url.Parse(uri)
	if _, ok := oauth.CanonicalResource(uri); !ok || err != nil || u.RawQuery != "" || strings.ContainsAny(uri, "?#") {
		return fmt.Errorf("resource %q is not an absolute URI without query or fragment", uri)
	}
	return nil
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the verifier; it does not reach the authorization
// server (the first token does), so Caddy starts while it is down.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	cfg := oauth.Config{
		Issuer:           h.AuthorizationServer,
		Leeway:           time.Duration(h.Leeway),
		MaxTokenBytes:    int(h.MaxTokenSize),
		MaxDocumentBytes: h.MaxDocumentSize,
		Timeout:          time.Duration(h.Timeout),
		KeysMinRefresh:   time.Duration(h.KeysMinRefresh),
		KeysMaxAge:       time.Duration(h.KeysMaxAge),
		TokenCache:       time.Duration(h.TokenCache),
	}
	for _, a := range h.Algorithms {
		cfg.Algorithms = append(cfg.Algorithms, jose.SignatureAlgorithm(a))
	}
	if in := h.Introspection; in != nil {
		repl := caddy.NewReplacer()
		cfg.IntrospectionClientID = repl.ReplaceKnown(in.ClientID, "")
		cfg.IntrospectionClientSecret = repl.ReplaceKnown(in.ClientSecret, "")
		cfg.IntrospectionCache = time.Duration(in.Cache)
		if cfg.IntrospectionCache == 0 {
			cfg.IntrospectionCache = DefaultIntrospectionCache
		}
	}
	v, err := oauth.NewVerifier(cfg)
	if err != nil {
		return fmt.Errorf("authorization_server: %w", err)
	}
	h.verifier = v
	if x := h.TokenExchange; x != nil {
		if err := h.validateExchange(); err != nil {
			return err
		}
		repl := caddy.NewReplacer()
		h.exchanger, err = v.NewExchanger(oauth.ExchangeConfig{
			ClientID:     repl.ReplaceKnown(x.ClientID, ""),
			ClientSecret: repl.ReplaceKnown(x.ClientSecret, ""),
			Resource:     x.Resource,
			Audience:     x.Audience,
			Scopes:       x.Scopes,
		})
		if err != nil {
			return fmt.Errorf("token_exchange: %w", err)
		}
	}
	h.metaPath = oauth.MetadataPath(h.resourcePath())
	h.sites = access.NewSites("mcp_auth")
	return nil
}

// Validate checks what Provision does not.
func (h *Handler) Validate() error {
	if h.AuthorizationServer == "" {
		return errors.New("authorization_server is required")
	}
	if h.Resource != "" {
		if err := checkResourceURI(h.Resource); err != nil {
			return err
		}
		if h.ResourcePath != "" {
			return errors.New("resource and resource_path exclude each other: resource names the path too")
		}
	}
	if h.ResourcePath != "" && !strings.HasPrefix(h.ResourcePath, "/") {
		return fmt.Errorf("resource_path must start with '/': %q", h.ResourcePath)
	}
	if in := h.Introspection; in != nil && (in.ClientID == "" || in.ClientSecret == "") {
		return errors.New("introspection needs a client_id and a client_secret")
	}
	if h.ForwardTokenHeader != "" {
		if err := checkTokenHeader(h.ForwardTokenHeader); err != nil {
			return fmt.Errorf("forward_token: %w", err)
		}
	}
	return h.validateExchange()
}

// resourcePath is the path of the resource's URI.
func (h *Handler) resourcePath() string {
	if h.Resource != "" {
		u, _ := url.Parse(h.Resource)
		return u.EscapedPath()
	}
	return h.ResourcePath
}

// resource is this resource's URI for r (see Resource).
func (h *Handler) resource(r *http.Request) string {
	if h.Resource != "" {
		return strings.TrimSuffix(h.Resource, "/")
	}
	return access.RequestScheme(r) + "://" + access.RequestHost(r) + strings.TrimSuffix(h.ResourcePath, "/")
}

// ServeHTTP serves the metadata, or lets a request with a usable token go
// on to next, or refuses it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.Resource == "" && !access.HostNamesThisSite(r, h.sites.Of(r, h)) {
		// The resource would be built from a host the client picked,
		// which may name another server: a token for that one would
		// pass here, and the metadata would describe it.
		h.logger.Debug("Host does not name this site; set resource if clients reach it under a port or name Caddy cannot see",
			zap.String("host", r.Host))
		return caddyhttp.Error(http.StatusMisdirectedRequest, errors.New("the request's host does not name this resource"))
	}
	if r.URL.Path == h.metaPath || r.URL.Path == oauth.WellKnownPrefix {
		return h.serveMetadata(w, r)
	}
	if isPreflight(r) {
		// The handlers behind (mcp_sse, mcp_stdio) answer it. It carries
		// no token: the header mcp_auth fills for the upstream (the
		// exchanged token's, forward_token's) must not go on with a value
		// the client set, or any client, without a token, could reach
		// the upstream with a "token" of its choice where the upstream
		// trusts mcp_auth's.
		for _, name := range h.ownHeaders() {
			r.Header.Del(name)
		}
		return next.ServeHTTP(w, r)
	}
	resource := h.resource(r)
	if strings.Contains(r.URL.RawQuery, "access_token") && r.URL.Query().Has("access_token") {
		// The MCP specification forbids a token in the query string (the
		// metadata says "header"): going on, it would reach the upstream
		// and its logs in the URL.
		metrics.refused.WithLabelValues(string(oauth.ReasonMalformed)).Inc()
		h.challenge(w, r, resource, "invalid_request", "a token in the query string is not accepted")
		return caddyhttp.Error(http.StatusBadRequest, errors.New("access_token in the query string"))
	}
	raw, present, err := oauth.BearerToken(r.Header, h.maxTokenBytes())
	if err == nil && !present {
		metrics.refused.WithLabelValues(string(oauth.ReasonMissing)).Inc()
		h.challenge(w, r, resource, "", "")
		return caddyhttp.Error(http.StatusUnauthorized, errors.New("no bearer token"))
	}
	var tok *oauth.Token
	if err == nil {
		tok, err = h.verifier.Verify(r.Context(), raw, resource)
	}
	if err != nil {
		return h.refuse(w, r, resource, err)
	}
	if !tok.HasScopes(h.Scopes) {
		metrics.refused.WithLabelValues(string(oauth.ReasonScope)).Inc()
		h.challenge(w, r, resource, "insufficient_scope", "the token lacks a required scope")
		return caddyhttp.Error(http.StatusForbidden, errors.New("token lacks a required scope"))
	}
	setIdentity(r, tok)
	h.guardTrailers(r)
	if h.exchanger != nil {
		return h.exchange(w, r, next, raw, tok)
	}
	metrics.accepted.Inc()
	h.removeToken(r)
	return next.ServeHTTP(w, r)
}

// refuse answers a request whose token was refused: 401 with
// error="invalid_token", or 503 when the authorization server could not
// be asked (the token may be fine: retry later, do not log in again).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, resource string, err error) error {
	reason := oauth.ReasonOf(err)
	metrics.refused.WithLabelValues(string(reason)).Inc()
	var e *oauth.Error
	if errors.As(err, &e) && e.Unavailable() {
		h.logger.Warn("authorization server unavailable", zap.String("issuer", h.AuthorizationServer), zap.Error(err))
		w.Header().Set("Retry-After", "5")
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	h.logger.Debug("token refused", zap.String("reason", string(reason)), zap.Error(err))
	h.challenge(w, r, resource, "invalid_token", description(reason))
	return caddyhttp.Error(http.StatusUnauthorized, err)
}

// challenge sets the WWW-Authenticate header of a refusal. A browser
// client of another origin must be able to read it to start its login,
// so a request with an Origin also gets the CORS headers that expose it;
// a refusal tells nothing a client of any origin may not know (the same
// as the public metadata).
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, resource, errCode, description string) {
	hdr := w.Header()
	hdr.Set("WWW-Authenticate", oauth.Challenge(oauth.MetadataURL(resource), h.scope(), errCode, description))
	if r.Header.Get("Origin") != "" {
		hdr.Set("Access-Control-Allow-Origin", "*")
		hdr.Set("Access-Control-Expose-Headers", "WWW-Authenticate")
	}
}

// description is the fixed error_description of a reason: the client
// learns what was wrong with its token, never our internal error text.
func description(r oauth.Reason) string {
	switch r {
	case oauth.ReasonExpired:
		return "the token expired"
	case oauth.ReasonNotYetValid:
		return "the token is not valid yet"
	case oauth.ReasonAudience:
		return "the token was not issued for this resource"
	case oauth.ReasonIssuer:
		return "the token was not issued by the authorization server"
	case oauth.ReasonTooLarge:
		return "the token is too large"
	case oauth.ReasonInactive:
		return "the token is not active"
	default:
		return "the token is not valid"
	}
}

func (h *Handler) scope() string { return strings.Join(h.Scopes, " ") }

func (h *Handler) maxTokenBytes() int {
	if h.MaxTokenSize > 0 {
		return int(h.MaxTokenSize)
	}
	return oauth.DefaultMaxTokenBytes
}

// isPreflight reports whether r is a CORS preflight, which goes on
// without a token. A browser's preflight carries neither a body nor
// credentials (Fetch); an OPTIONS with either is an ordinary request,
// checked like any other, or it would take a body past mcp_auth, or a
// token on to the upstream.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" &&
		r.ContentLength == 0 && len(r.TransferEncoding) == 0 && len(r.Header.Values("Authorization")) == 0
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
