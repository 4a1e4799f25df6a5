package oauth

import (
	"errors"
	"fmt"
)

// Reason names why a token was refused; the mcp_auth metrics count
// refusals by it, so the set is closed.
type Reason string

const (
	ReasonMissing      Reason = "missing"       // no bearer token
	ReasonMalformed    Reason = "malformed"     // not a bearer token, or not a JWT/opaque token we can read
	ReasonTooLarge     Reason = "too_large"     // longer than the configured bound
	ReasonAlgorithm    Reason = "algorithm"     // signed with an algorithm not allowed (none, HMAC, ...)
	ReasonUnknownKey   Reason = "unknown_key"   // no key of the authorization server has its kid
	ReasonSignature    Reason = "signature"     // the signature does not verify
	ReasonIssuer       Reason = "issuer"        // iss is not the authorization server
	ReasonAudience     Reason = "audience"      // aud does not name this resource
	ReasonExpired      Reason = "expired"       // exp has passed
	ReasonNotYetValid  Reason = "not_yet_valid" // nbf (or iat) is in the future
	ReasonInactive     Reason = "inactive"      // introspection says the token is not active
	ReasonScope        Reason = "insufficient_scope"
	ReasonUnavailable  Reason = "unavailable" // the authorization server could not be asked
	ReasonNoSubject    Reason = "no_subject"  // neither sub nor client_id: no identity to bind to
	ReasonOpaqueNoIntr Reason = "opaque"      // an opaque token, and no introspection configured
	// The token was accepted, but the token exchange (RFC 8693) for the
	// upstream's token failed: the authorization server refused it (4xx),
	// or could not be asked, or answered with nothing usable.
	ReasonExchangeRefused     Reason = "exchange_refused"
	ReasonExchangeUnavailable Reason = "exchange_unavailable"
)

// Error is a refused token. Unavailable errors are the authorization
// server's fault, not the client's: the request cannot be decided, and
// is refused with 503 rather than 401.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "token refused: " + string(e.Reason)
	}
	return fmt.Sprintf("token refused: %s: %v", e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Unavailable reports whether the token could not be decided because the
// authorization server could not be reached (to decide on it, or to
// exchange it).
func (e *Error) Unavailable() bool {
	return e.Reason == ReasonUnavailable || e.Reason == ReasonExchangeUnavailable
}

func refuse(reason Reason, err error) *Error { return &Error{Reason: reason, Err: err} }

// ReasonOf is the reason of a refusal, or ReasonMalformed for an error
// that is not one.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonMalformed
}
