package mcpsse_test

// End-to-end tests with the real clients people use: the official Go SDK,
// mcp-go and the TypeScript SDK, each through a real Caddy to a real
// upstream, each doing initialize, tools/list and tools/call.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
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

	"github.com/mcpsse/caddy-mcp-sse/sse"
)

var demoTools = []string{"add", "echo", "sample", "slow"}

// checkDemoTools fails the test unless names are the demo's tools, in any
// order.
func checkDemoTools(t *testing.T, names []string) {
	t.Helper()
	names = slices.Sorted(slices.Values(names))
	if !slices.Equal(names, demoTools) {
		t.Errorf("tools = %v, want %v", names, demoTools)
	}
}

func connectGoSDK(t *testing.T, ctx context.Context, tc *testCaddy, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-e2e", Version: "1.0.0"}, opts)
	cs, err := client.Connect(ctx, &mcp.SSEClientTransport{Endpoint: tc.base + "/sse"}, nil)
	if err != nil {
		t.Fatalf("go-sdk connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func TestGoSDKClient(t *testing.T) {
	tc := startCaddy(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := connectGoSDK(t, ctx, tc, nil)

	if got := cs.InitializeResult().ServerInfo.Name; got != "mcp-sse-demo" {
		t.Errorf("server name = %q", got)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	checkDemoTools(t, names)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 2, "b": 40}})
	if err != nil {
		t.Fatalf("tools/call: %v", err)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; got != "42" {
		t.Errorf("add(2, 40) = %q", got)
	}
}

func TestMCPGoClient(t *testing.T) {
	tc := startCaddy(t, "")
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
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	checkDemoTools(t, names)
	call := mcpgo.CallToolRequest{}
	call.Params.Name = "echo"
	call.Params.Arguments = map[string]any{"text": "from mcp-go"}
	res, err := c.CallTool(ctx, call)
	if err != nil {
		t.Fatalf("mcp-go tools/call: %v", err)
	}
	if got := res.Content[0].(mcpgo.TextContent).Text; got != "from mcp-go" {
		t.Errorf("echo = %q", got)
	}
}

// TestTypeScriptClient runs the TypeScript SDK's SSEClientTransport under
// node. The test command installs its npm package (scripts/test); a
// missing install is a failure, not a skip, so CI cannot pass without it.
func TestTypeScriptClient(t *testing.T) {
	dir := filepath.Join("testdata", "tsclient")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Fatalf("TypeScript SDK not installed (run scripts/test, or npm ci --prefix %s): %v", dir, err)
	}
	tc := startCaddy(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "client.mjs"), tc.base+"/sse", "from typescript")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node client: %v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	out := stdout.Bytes()
	var got struct {
		Server string   `json:"server"`
		Tools  []string `json:"tools"`
		Text   string   `json:"text"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node client printed %q: %v", out, err)
	}
	if got.Server != "mcp-sse-demo" || !slices.Equal(got.Tools, demoTools) || got.Text != "from typescript" {
		t.Errorf("node client saw %+v", got)
	}
}

func newGoSDKClient(name string) *mcp.Client {
	return mcp.NewClient(&mcp.Implementation{Name: name, Version: "1"}, nil)
}

func sseTransport(endpoint string, client *http.Client) *mcp.SSEClientTransport {
	return &mcp.SSEClientTransport{Endpoint: endpoint, HTTPClient: client}
}

func echoCall(ctx context.Context, cs *mcp.ClientSession, text string) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
	if err != nil {
		return "", err
	}
	return res.Content[0].(*mcp.TextContent).Text, nil
}

// wireRecorder is an http.RoundTripper that records the messages of every
// event stream a client reads through it, in the order the client read
// them.
type wireRecorder struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	msgs []rpcMessage
}

func (w *wireRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.rt.RoundTrip(req)
	if err == nil && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = &wireBody{ReadCloser: resp.Body, w: w}
	}
	return resp, err
}

func (w *wireRecorder) messages() []rpcMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

type wireBody struct {
	io.ReadCloser
	w      *wireRecorder
	parser sse.Parser
}

func (b *wireBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.parser.Feed(p[:n], func(ev sse.Event) error {
		var m rpcMessage
		if ev.Name == sse.EventMessage && json.Unmarshal(ev.Data, &m) == nil {
			b.w.mu.Lock()
			b.w.msgs = append(b.w.msgs, m)
			b.w.mu.Unlock()
		}
		return nil
	})
	return n, err
}
