// Command servers runs one of the MCP servers the benchmark measures or
// puts behind mcp_sse, each with the same echo tool (and, where the
// scenario needs it, a burst tool that sends N progress notifications
// before its result):
//
//	-kind streamable  the official Go SDK's StreamableHTTPHandler at /mcp
//	-kind sessionless the same Go SDK server, sessionless (MCP 2026-07-28): Stateless
//	-kind lean        a minimal Streamable HTTP server: raw net/http, JSON replies
//	-kind gosdk-sse   the Go SDK's native HTTP+SSE handler (mcp.NewSSEHandler) at /sse
//	-kind mcpgo-sse   mcp-go's server.NewSSEServer at /sse and /message
//	-kind bare        just enough HTTP+SSE to echo a tools/call: the floor
//	-kind stdio       the Go SDK server on stdin/stdout, for supergateway
package main

import (
	"context"
	"flag"
	"github.com/google/jsonschema-go/jsonschema"
	"log"
	"net"
	"net/http"
	"os"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpgoserver "github.com/mark3labs/mcp-go/server"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	kind := flag.String("kind", "", "which server (see the command's doc)")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	flag.Parse()

	if *kind == "stdio" {
		if err := goSDKServer().Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			log.Fatal(err)
		}
		return
	}

	var h http.Handler
	switch *kind {
	case "streamable":
		s := goSDKServer()
		mux := http.NewServeMux()
		mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
		h = mux
	case "sessionless":
		s := goSDKServer()
		mux := http.NewServeMux()
		mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true}))
		h = mux
	case "lean":
		h = leanHandler()
	case "gosdk-sse":
		s := goSDKServer()
		mux := http.NewServeMux()
		mux.Handle("/sse", mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return s }, nil))
		h = mux
	case "mcpgo-sse":
		h = mcpgoserver.NewSSEServer(mcpgoServer())
	case "bare":
		h = newBare()
	default:
		log.Fatalf("unknown -kind %q", *kind)
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("-addr must be a loopback address: %q", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// The benchmark reads the address from the first line of output.
	os.Stdout.WriteString(ln.Addr().String() + "\n")
	log.Fatal(http.Serve(ln, h))
}

type echoIn struct {
	Text string `json:"text"`
}

type burstIn struct {
	Count int `json:"count"`
}

func goSDKServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "burst"}, func(ctx context.Context, req *mcp.CallToolRequest, in burstIn) (*mcp.CallToolResult, any, error) {
		token := req.Params.GetProgressToken()
		for i := range in.Count {
			if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: float64(i)}); err != nil {
				return nil, nil, err
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
	})
	// confirm needs one round of input (an elicitation) before it answers
	// with its text: through the bridge in front of the sessionless
	// server, an MRTR round; in front of the stateful one, the server's
	// own elicitation request.
	mcp.AddTool(s, &mcp.Tool{Name: "confirm"}, func(_ context.Context, req *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		if r, ok := req.Params.InputResponses["ok"].(*mcp.ElicitResult); ok && r.Action == "accept" {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		}
		return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{
			"ok": &mcp.ElicitParams{Message: "confirm?", RequestedSchema: &jsonschema.Schema{Type: "object"}},
		}}, nil, nil
	})
	return s
}

func mcpgoServer() *mcpgoserver.MCPServer {
	s := mcpgoserver.NewMCPServer("bench", "1")
	s.AddTool(mcpgo.NewTool("echo", mcpgo.WithString("text")), func(_ context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		return mcpgo.NewToolResultText(req.GetString("text", "")), nil
	})
	return s
}
