// Package oauth is the OAuth 2.1 resource server the MCP specification asks
// an HTTP server to be (2025-06-18 on): it says where to log in (Protected
// Resource Metadata, RFC 9728, and the WWW-Authenticate challenge that
// points at it), and it decides whether a bearer token may be used here:
// a JWT access token (RFC 9068) checked against the authorization
// server's keys, found through its metadata (RFC 8414 or OpenID
// Discovery), or an opaque one through token introspection (RFC 7662).
// A token must have been issued for this resource (RFC 8707): its
// audience names it.
//
// The package knows nothing of Caddy; the mcp_auth handler (package
// mcpauth) is a thin layer over it. Everything it fetches is bounded in
// bytes and time, and a token is bounded in bytes before it is parsed.
package oauth
