package main

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

// The demo server is registered here only, not in the module users build:
// it exists so that Caddyfile.example runs with nothing else installed.
func init() {
	caddy.RegisterModule(DemoServer{})
	httpcaddyfile.RegisterHandlerDirective("mcp_demo", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		h.Next()
		if h.NextArg() {
			return nil, h.ArgErr()
		}
		return new(DemoServer), nil
	})
	httpcaddyfile.RegisterDirectiveOrder("mcp_demo", httpcaddyfile.After, "reverse_proxy")
}

// DemoServer serves the demo MCP server (tools echo, add, slow, sample)
// over Streamable HTTP on every request it gets. It is terminal: it never
// calls the next handler.
type DemoServer struct {
	handler http.Handler
}

// CaddyModule returns the Caddy module information.
func (DemoServer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_demo",
		New: func() caddy.Module { return new(DemoServer) },
	}
}

// Provision builds the MCP server.
func (d *DemoServer) Provision(caddy.Context) error {
	d.handler = demo.Handler()
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (d *DemoServer) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	d.handler.ServeHTTP(w, r)
	return nil
}

var (
	_ caddy.Provisioner           = (*DemoServer)(nil)
	_ caddyhttp.MiddlewareHandler = (*DemoServer)(nil)
)
