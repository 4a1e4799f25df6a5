// Command caddy is Caddy with its standard modules, the mcp_sse and
// mcp_stdio handlers, and the demo MCP server: as a handler (mcp_demo),
// which Caddyfile.example fronts, and as a stdio program (the subcommand
// `caddy mcp-demo-stdio`), which Caddyfile.stdio.example runs. It needs no
// xcaddy: `go run ./cmd/caddy run --config Caddyfile.example` (or
// Caddyfile.stdio.example).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/mcpsse/caddy-mcp-sse"
)

func main() {
	setExecutableVar()
	caddycmd.Main()
}
