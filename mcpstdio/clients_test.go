package mcpstdio_test

// Real clients against real stdio servers through a real Caddy: the Go
// SDK over Streamable HTTP (directly) and over HTTP+SSE (through mcp_sse,
// dispatched to mcp_stdio in process), mcp-go and the TypeScript SDK.

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// goSDKTransports are the Go SDK's two client transports to one Caddy.
func goSDKTransports(tc *testCaddy) map[string]func() mcp.Transport {
	return map[string]func() mcp.Transport{
		"streamable": func() mcp.Transport { return &mcp.StreamableClientTransport{Endpoint: tc.base + "/mcp"} },
		"sse":        func() mcp.Transport { return &mcp.SSEClientTransport{Endpoint: tc.base + "/sse"} },
	}
}

func connect(t *testing.T, ctx context.Context, tr mcp.Transport, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-e2e", Version: "1.0.0"}, opts)
	cs, err := client.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call runs a tool and returns its text.
func call(t *testing.T, ctx context.Context, cs *mcp.ClientSession, params *mcp.CallToolParams) string {
	t.Helper()
	res, err := cs.CallTool(ctx, params)
	return text(t, res, err)
}

func text(t *testing.T, res *mcp.CallToolResult, err error) string {
	t.Helper()
	if err != nil {
		t.Fatalf("tools/call: %v", err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("tools/call result: %+v", res)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

// TestGoSDKClients: initialize, tools/list, tools/call; progress before the
// result; a sampling round trip, over both transports.
func TestGoSDKClients(t *testing.T) {
	tc := startCaddy(t, strings.ReplaceAll(stdioSite, "{settings}", ""))
	for name, tr := range goSDKTransports(tc) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var mu sync.Mutex
			var progress []float64
			cs := connect(t, ctx, tr(), &mcp.ClientOptions{
				ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
					mu.Lock()
					progress = append(progress, req.Params.Progress)
					mu.Unlock()
				},
				CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
					prompt := req.Params.Messages[0].Content.(*mcp.TextContent).Text
					return &mcp.CreateMessageResult{Model: "test-model", Role: "assistant",
						Content: &mcp.TextContent{Text: "echo of " + prompt}}, nil
				},
			})
			if got := cs.InitializeResult().ServerInfo.Name; got != "mcp-sse-demo" {
				t.Errorf("server name %q", got)
			}
			tools, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			var names []string
			for _, tool := range tools.Tools {
				names = append(names, tool.Name)
			}
			if !slices.Contains(names, "echo") || !slices.Contains(names, "crash") {
				t.Errorf("tools %v", names)
			}
			if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi " + name}}); got != "hi "+name {
				t.Errorf("echo = %q", got)
			}

			params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"steps": 3, "delay_ms": 20}}
			params.SetProgressToken("p-" + name)
			res, err := cs.CallTool(ctx, params)
			text(t, res, err)
			// The client runs notification handlers on goroutines of its
			// own, so the last may still run when the result is back (the
			// wire order is TestWireProgressBeforeResult's).
			eventually(t, 5*time.Second, "three progress notifications", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(progress) == 3
			})
			mu.Lock()
			got := slices.Clone(progress)
			mu.Unlock()
			if !slices.Equal(got, []float64{1, 2, 3}) {
				t.Errorf("progress %v, want [1 2 3]", got)
			}

			if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "sample", Arguments: map[string]any{"prompt": "hello?"}}); got != "model test-model said: echo of hello?" {
				t.Errorf("sample = %q", got)
			}
		})
	}
}
