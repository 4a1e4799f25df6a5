package main

import (
	"context"
	"fmt"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

// executableVar names, for Caddyfiles read by this binary, the binary
// itself: Caddyfile.stdio.example runs `{$MCP_DEMO_CADDY} mcp-demo-stdio`
// as its stdio server. Under `go run` the binary lives in a temporary
// directory no Caddyfile could name otherwise, and PATH holds no `caddy`.
const executableVar = "MCP_DEMO_CADDY"

// The demo server as a stdio program is a subcommand of this binary, not a
// program of its own, so that a session of Caddyfile.stdio.example starts
// it at once: nothing is compiled when a session starts, and no Go
// toolchain is needed at run time.
func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "mcp-demo-stdio",
		Short: "Serves the demo MCP server (tools echo, add, slow, sample) on stdin/stdout",
		Long: `
Serves the demo MCP server (tools echo, add, slow, sample) over stdio,
newline-delimited JSON-RPC on stdin and stdout, until stdin closes: the
server Caddyfile.stdio.example puts behind mcp_stdio, where it runs as
{$` + executableVar + `} mcp-demo-stdio.`,
		Func: func(caddycmd.Flags) (int, error) {
			// stdout carries the protocol only.
			fmt.Fprintln(os.Stderr, "mcp-demo-stdio: serving on stdin/stdout")
			if err := demo.NewServer().Run(context.Background(), &mcp.StdioTransport{}); err != nil {
				return 1, fmt.Errorf("mcp-demo-stdio: %w", err)
			}
			return 0, nil
		},
	})
}

// setExecutableVar sets executableVar to this binary's path, for the
// Caddyfiles this process (or a `caddy run` that `caddy start` forks)
// adapts.
func setExecutableVar() {
	if exe, err := os.Executable(); err == nil {
		os.Setenv(executableVar, exe)
	}
}
