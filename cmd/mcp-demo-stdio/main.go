// Command mcp-demo-stdio is the demo MCP server (tools echo, add, slow,
// sample) as a stdio program: the server Caddyfile.stdio.example puts
// behind mcp_stdio, so that it runs with nothing installed beyond Go.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

func main() {
	fmt.Fprintln(os.Stderr, "mcp-demo-stdio: serving on stdin/stdout")
	if err := demo.NewServer().Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "mcp-demo-stdio:", err)
		os.Exit(1)
	}
}
