package mcpsse

// The mcp_stdio handler (package mcpstdio) comes with this module, so one
// `xcaddy build --with github.com/mcpsse/caddy-mcp-sse` brings both.
import _ "github.com/mcpsse/caddy-mcp-sse/mcpstdio"
