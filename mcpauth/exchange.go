package mcpauth

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/oauth"
)

// Token exchange (RFC 8693): the client's accepted token traded for one of
// the downstream resource's before the request goes on.

// TokenExchange is the token exchange (RFC 8693) mcp_auth performs for
// each accepted token: grant_type token-exchange at the authorization
// server's token_endpoint, the client's token as subject_token, an
// access token for the downstream resource asked for.
type TokenExchange struct {
	// ClientID and ClientSecret authenticate mcp_auth to the token
	// endpoint (client_secret_basic); the secret may be a placeholder
	// such as {env.MCP_EXCHANGE_SECRET}. Required.
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// Resource is the downstream resource's URI (RFC 8707 resource).
	// Required unless Audience is given.
	Resource string `json:"resource,omitempty"`
	// Audience is the downstream's logical name (RFC 8693 audience).
	Audience string `json:"audience,omitempty"`
	// Scopes asked for the new token. Default: none named (the
	// authorization server decides).
	Scopes []string `json:"scopes,omitempty"`
	// Header carries the new token on, as "Bearer <token>". Default
	// Authorization.
	Header string `json:"header,omitempty"`
}

// header is where the exchanged token goes.
func (x *TokenExchange) header() string {
	if x.Header == "" {
		return "Authorization"
	}
	return x.Header
}

// validate checks the settings of a token exchange.
func (x *TokenExchange) validate() error {
	if x.ClientID == "" || x.ClientSecret == "" {
		return errors.New("token_exchange needs a client_id and a client_secret")
	}
	if x.Resource == "" && x.Audience == "" {
		return errors.New("token_exchange needs a resource (or an audience)")
	}
	if x.Resource != "" {
		if err := checkResourceURI(x.Resource); err != nil {
			return fmt.Errorf("token_exchange: %w", err)
		}
	}
	if x.Header != "" {
		if err := checkTokenHeader(x.Header); err != nil {
			return fmt.Errorf("token_exchange: header %w", err)
		}
	}
	return nil
}

// validateExchange checks the token exchange's settings, and that the
// token is not also to be forwarded.
func (h *Handler) validateExchange() error {
	if h.TokenExchange == nil {
		return nil
	}
	if h.ForwardTokenHeader != "" {
		return errors.New("forward_token and token_exchange exclude each other: the client's token goes on, or one exchanged for it, not both")
	}
	return h.TokenExchange.validate()
}

// exchange trades the client's accepted token for one of the downstream
// resource (RFC 8693) and lets the request go on with that one only; if
// the exchange fails, the request goes no further: 503 with Retry-After
// when the authorization server could not be asked, 403 when it refused.
// The exchanged token is never logged, nor sent back to the client.
func (h *Handler) exchange(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, raw string, tok *oauth.Token) error {
	ex, err := h.exchanger.Exchange(r.Context(), raw, tok.Expiry)
	if err != nil {
		reason := oauth.ReasonOf(err)
		metrics.refused.WithLabelValues(string(reason)).Inc()
		var e *oauth.Error
		if errors.As(err, &e) && e.Unavailable() {
			h.logger.Warn("token exchange: authorization server unavailable", zap.String("issuer", h.AuthorizationServer),
				zap.String("subject", tok.Subject), zap.Error(err))
			w.Header().Set("Retry-After", "5")
			return caddyhttp.Error(http.StatusServiceUnavailable, err)
		}
		h.logger.Info("token exchange refused by the authorization server", zap.String("reason", string(reason)),
			zap.String("subject", tok.Subject), zap.Error(err))
		return caddyhttp.Error(http.StatusForbidden, err)
	}
	if ex.Shared {
		metrics.exchanges.WithLabelValues("cached").Inc()
	} else {
		metrics.exchanges.WithLabelValues("exchanged").Inc()
	}
	metrics.accepted.Inc()
	r.Header.Del("Authorization")
	r.Header.Set(h.TokenExchange.header(), "Bearer "+ex.AccessToken)
	return next.ServeHTTP(w, r)
}
