package mcpstdio_test

// Stdio servers nobody here wrote: the Go SDK's conformance
// everything-server (built from the module cache) and the reference
// @modelcontextprotocol/server-everything (npm, run with node), behind
// mcp_stdio, reached by the Go SDK over Streamable HTTP and through
// mcp_sse.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpsse/caddy-mcp-sse/internal/everything"
)

// goEverythingServer builds the Go SDK's conformance everything-server,
// at the SDK version go.mod requires, from the module cache.
func goEverythingServer(t *testing.T) string {
	t.Helper()
	bin, err := everything.Build()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// npmEverythingServer is the path of server-everything's entry point,
// which scripts/test installs with npm ci.
func npmEverythingServer(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "testdata", "tsclient", "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("server-everything not installed (run scripts/test, or npm ci --prefix testdata/tsclient): %v", err)
	}
	return dir
}

type serverCase struct {
	name     string
	command  string // the mcp_stdio line after the directive
	server   string // serverInfo.name
	echoTool string
	echoArgs func(string) map[string]any
	progress string
	progArgs map[string]any
	sampling string
	sampArgs map[string]any
}

func TestRealStdioServers(t *testing.T) {
	cases := []serverCase{
		{
			name:     "go-sdk everything-server",
			command:  "* " + goEverythingServer(t),
			server:   "mcp-conformance-test-server",
			echoTool: "test_simple_text",
			echoArgs: func(string) map[string]any { return map[string]any{} },
			progress: "test_tool_with_progress",
			progArgs: map[string]any{},
			sampling: "test_sampling",
			sampArgs: map[string]any{"prompt": "hello?"},
		},
		{
			name:     "npm server-everything",
			command:  "node " + npmEverythingServer(t) + " stdio",
			server:   "mcp-servers/everything",
			echoTool: "echo",
			echoArgs: func(s string) map[string]any { return map[string]any{"message": s} },
			progress: "trigger-long-running-operation",
			progArgs: map[string]any{"duration": 0.3, "steps": 3},
			sampling: "trigger-sampling-request",
			sampArgs: map[string]any{"prompt": "hello?"},
		},
	}
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			tc := startCaddy(t, `mcp_sse
	mcp_stdio `+sc.command+` {
		stop_timeout 2s
	}`)
			for kind, tr := range goSDKTransports(tc) {
				t.Run(kind, func(t *testing.T) { exercise(t, sc, tr()) })
			}
		})
	}
}

func exercise(t *testing.T, sc serverCase, tr mcp.Transport) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var progress []float64
	cs := connect(t, ctx, tr, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params.Progress)
			mu.Unlock()
		},
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Model: "test-model", Role: "assistant",
				Content: &mcp.TextContent{Text: "sampled-answer-42"}}, nil
		},
	})
	if got := cs.InitializeResult().ServerInfo.Name; got != sc.server {
		t.Errorf("server %q, want %q", got, sc.server)
	}
	var names []string
	// server-everything registers its sampling tool once the client has
	// said it samples, and announces it: list until it is there.
	eventually(t, 10*time.Second, "the tool list to hold the sampling tool", func() bool {
		tools, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		names = names[:0]
		for _, tool := range tools.Tools {
			names = append(names, tool.Name)
		}
		return slices.Contains(names, sc.sampling)
	})
	for _, want := range []string{sc.echoTool, sc.progress} {
		if !slices.Contains(names, want) {
			t.Errorf("tools %v lack %s", names, want)
		}
	}
	got := call(t, ctx, cs, &mcp.CallToolParams{Name: sc.echoTool, Arguments: sc.echoArgs("token-77")})
	if sc.echoTool == "echo" && !strings.Contains(got, "token-77") {
		t.Errorf("echo = %q", got)
	}
	params := &mcp.CallToolParams{Name: sc.progress, Arguments: sc.progArgs}
	params.SetProgressToken("progress-1")
	call(t, ctx, cs, params)
	eventually(t, 5*time.Second, "three progress notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(progress) == 3
	})
	if got := call(t, ctx, cs, &mcp.CallToolParams{Name: sc.sampling, Arguments: sc.sampArgs}); !strings.Contains(got, "sampled-answer-42") {
		t.Errorf("sampling tool = %q, want the client's answer in it", got)
	}
}
