// Command caddy is Caddy with its standard modules, the mcp_sse and
// mcp_stdio handlers, and the demo MCP server (mcp_demo) that
// Caddyfile.example fronts. It needs no xcaddy:
// `go run ./cmd/caddy run --config Caddyfile.example` (or
// Caddyfile.stdio.example, which runs the demo as a stdio server).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/mcpsse/caddy-mcp-sse"
)

func main() {
	caddycmd.Main()
}
