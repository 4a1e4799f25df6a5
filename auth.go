package mcpsse

// The mcp_auth handler (package mcpauth) comes with this module too, so
// one `xcaddy build --with github.com/mcpsse/caddy-mcp-sse` brings it.
import _ "github.com/mcpsse/caddy-mcp-sse/mcpauth"
