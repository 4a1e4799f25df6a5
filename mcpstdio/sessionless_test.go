package mcpstdio_test

// 2026-07-28 clients (no session, no initialize; input through MRTR)
// through mcp_stdio to legacy stdio servers: the Go SDK's client at its
// default against the Go SDK's conformance everything-server and the npm
// server-everything.

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const modernVersion = "2026-07-28"

// sessionlessSite fronts command with mcp_stdio (and mcp_sse, for the
// legacy clients of the same tests).
func sessionlessSite(command, settings string) string {
	return `mcp_sse {
		resume_window 1s
	}
	mcp_stdio ` + command + ` {
		stop_timeout 2s
		` + settings + `
	}`
}

// modernClient connects the Go SDK's client at its default revision over
// Streamable HTTP, with handlers for every kind of input.
func modernClient(t *testing.T, ctx context.Context, tc *testCaddy, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	if opts == nil {
		opts = &mcp.ClientOptions{}
	}
	cs := connect(t, ctx, &mcp.StreamableClientTransport{Endpoint: tc.base + "/mcp"}, opts)
	if got := cs.InitializeResult().ProtocolVersion; got != modernVersion {
		t.Fatalf("negotiated %q, want %q", got, modernVersion)
	}
	return cs
}

func answeringClient(who string) *mcp.ClientOptions {
	return &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"username": who + "-name"}}, nil
		},
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: who + "-sampled"}}, nil
		},
		Capabilities: &mcp.ClientCapabilities{Roots: mcp.RootCapabilities{}},
	}
}

func TestSessionlessGoSDKEverything(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("* "+goEverythingServer(t), ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var progress []float64
	opts := answeringClient("alice")
	opts.ProgressNotificationHandler = func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		progress = append(progress, req.Params.Progress)
		mu.Unlock()
	}
	cs := modernClient(t, ctx, tc, opts)
	if got := cs.InitializeResult().ServerInfo; got == nil || got.Name != "mcp-conformance-test-server" {
		t.Errorf("serverInfo %+v", got)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) < 10 {
		t.Fatalf("tools/list: %v %d", err, len(tools.Tools))
	}
	if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "test_simple_text"}); got == "" {
		t.Error("empty text")
	}
	p := &mcp.CallToolParams{Name: "test_tool_with_progress"}
	p.SetProgressToken("tok-1")
	call(t, ctx, cs, p)
	eventually(t, 5*time.Second, "progress notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(progress) >= 3
	})
	if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "test_elicitation", Arguments: map[string]any{"message": "who?"}}); !strings.Contains(got, "alice-name") {
		t.Errorf("test_elicitation = %q", got)
	}
	if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "test_sampling", Arguments: map[string]any{"prompt": "hi"}}); !strings.Contains(got, "alice-sampled") {
		t.Errorf("test_sampling = %q", got)
	}
}
