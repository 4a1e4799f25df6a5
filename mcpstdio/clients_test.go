package mcpstdio_test

// Real clients against real stdio servers through a real Caddy: the Go
// SDK over Streamable HTTP (directly) and over HTTP+SSE (through mcp_sse,
// dispatched to mcp_stdio in process), mcp-go and the TypeScript SDK.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mcpgoclient "github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// goSDKTransports are the Go SDK's two client transports to one Caddy.
func goSDKTransports(tc *testCaddy) map[string]func() mcp.Transport {
	return map[string]func() mcp.Transport{
		"streamable": func() mcp.Transport { return &mcp.StreamableClientTransport{Endpoint: tc.base + "/mcp"} },
		"sse":        func() mcp.Transport { return &mcp.SSEClientTransport{Endpoint: tc.base + "/sse"} },
	}
}

// connect connects the Go SDK's client at the newest legacy revision
// (2025-11-25): a session of its own, with a process of its own. At its
// default, 2026-07-28, it would make sessionless requests (see
// sessionless_test.go).
func connect(t *testing.T, ctx context.Context, tr mcp.Transport, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	return connectAt(t, ctx, tr, opts, "2025-11-25")
}

// connectAt connects the Go SDK's client asking for version ("" for its
// default).
func connectAt(t *testing.T, ctx context.Context, tr mcp.Transport, opts *mcp.ClientOptions, version string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-e2e", Version: "1.0.0"}, opts)
	cs, err := client.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
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

// TestTypeScriptClients runs the TypeScript SDK under node, over
// Streamable HTTP and through mcp_sse. The test command installs it
// (scripts/test); a missing install is a failure, not a skip.
func TestTypeScriptClients(t *testing.T) {
	dir := filepath.Join("..", "testdata", "tsclient")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Fatalf("TypeScript SDK not installed (run scripts/test, or npm ci --prefix testdata/tsclient): %v", err)
	}
	tc := startCaddy(t, site(""))
	for kind, url := range map[string]string{"streamable": tc.base + "/mcp", "sse": tc.base + "/sse"} {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "stdio_client.mjs"), url, kind, "from typescript "+kind)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("node client: %v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
			}
			var got struct {
				Server   string    `json:"server"`
				Tools    []string  `json:"tools"`
				Text     string    `json:"text"`
				Slow     string    `json:"slow"`
				Progress []float64 `json:"progress"`
				Wire     []float64 `json:"wire"`
				Sample   string    `json:"sample"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("node client printed %q: %v", stdout.Bytes(), err)
			}
			if got.Server != "mcp-sse-demo" || !slices.Contains(got.Tools, "echo") || got.Text != "from typescript "+kind ||
				got.Slow != "done after 3 steps" || got.Sample != "model ts-model said: ts answer to q" {
				t.Errorf("node client got %+v", got)
			}
			// Every progress notification reached the client before the
			// result (wire: as its transport read them). The SDK runs
			// progress handlers a microtask late but drops a request's
			// handler as soon as its result is read: over SSE, those read
			// in one chunk with the result (mcp_sse writes what is queued
			// in one flush, and a client slow to read takes several at
			// once) are lost inside the client, so onprogress sees a
			// prefix of them. The wire order is also
			// TestWireProgressBeforeResultThroughSSE's.
			if !slices.Equal(got.Wire, []float64{1, 2, 3}) {
				t.Errorf("progress before the result on the wire %v, want [1 2 3]", got.Wire)
			}
			if lost := kind == "sse" && len(got.Progress) < len(got.Wire); !slices.Equal(got.Progress, got.Wire) &&
				!(lost && slices.Equal(got.Progress, got.Wire[:len(got.Progress)])) {
				t.Errorf("progress %v seen by the SDK's onprogress, want those on the wire %v (over SSE, a prefix)", got.Progress, got.Wire)
			}
		})
	}
}

// TestMCPGoClient: mcp-go's SSE client through mcp_sse.
func TestMCPGoClient(t *testing.T) {
	tc := startCaddy(t, site(""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mcpgoclient.NewSSEMCPClient(tc.base + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Start(ctx); err != nil {
		t.Fatalf("mcp-go start: %v", err)
	}
	init := mcpgo.InitializeRequest{}
	init.Params.ClientInfo = mcpgo.Implementation{Name: "mcp-go-e2e", Version: "1.0.0"}
	ir, err := c.Initialize(ctx, init)
	if err != nil {
		t.Fatalf("mcp-go initialize: %v", err)
	}
	if ir.ServerInfo.Name != "mcp-sse-demo" {
		t.Errorf("server name = %q", ir.ServerInfo.Name)
	}
	tools, err := c.ListTools(ctx, mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatalf("mcp-go tools/list: %v", err)
	}
	if len(tools.Tools) < 4 {
		t.Errorf("tools %v", tools.Tools)
	}
	var mu sync.Mutex
	var progress int
	c.OnNotification(func(n mcpgo.JSONRPCNotification) {
		if n.Method == "notifications/progress" {
			mu.Lock()
			progress++
			mu.Unlock()
		}
	})
	req := mcpgo.CallToolRequest{}
	req.Params.Name = "slow"
	req.Params.Arguments = map[string]any{"steps": 3, "delay_ms": 20}
	req.Params.Meta = &mcpgo.Meta{ProgressToken: "mcp-go-progress"}
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("mcp-go tools/call: %v", err)
	}
	if got := res.Content[0].(mcpgo.TextContent).Text; got != "done after 3 steps" {
		t.Errorf("slow = %q", got)
	}
	eventually(t, 5*time.Second, "three progress notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return progress == 3
	})
	call := mcpgo.CallToolRequest{}
	call.Params.Name = "echo"
	call.Params.Arguments = map[string]any{"text": "from mcp-go"}
	res, err = c.CallTool(ctx, call)
	if err != nil {
		t.Fatalf("mcp-go tools/call: %v", err)
	}
	if got := res.Content[0].(mcpgo.TextContent).Text; got != "from mcp-go" {
		t.Errorf("echo = %q", got)
	}
}
