package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
)

// TestStdioExampleCaddyfile runs Caddyfile.stdio.example as the README
// says, talks to its stdio demo server over Streamable HTTP and through
// mcp_sse, then runs `caddy stop` with both sessions live: Caddy exits
// and no process it started is left.
func TestStdioExampleCaddyfile(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "Caddyfile.stdio.example"))
	if err != nil {
		t.Fatal(err)
	}
	demoDir, err := filepath.Abs(filepath.Join("..", "mcp-demo-stdio"))
	if err != nil {
		t.Fatal(err)
	}
	port, adminPort := freePort(t), freePort(t)
	cfg := strings.NewReplacer(
		"admin localhost:2019", "admin 127.0.0.1:"+adminPort,
		"http://localhost:8080", "http://127.0.0.1:"+port,
		// The example runs from the repository's root; this test runs
		// from cmd/caddy.
		"go run ./cmd/mcp-demo-stdio", "go run "+demoDir,
	).Replace(string(example))
	if !strings.Contains(cfg, adminPort) || !strings.Contains(cfg, "127.0.0.1:"+port) || !strings.Contains(cfg, demoDir) {
		t.Fatalf("Caddyfile.stdio.example no longer has what this test rewrites:\n%s", example)
	}
	// Build the demo once before the sessions do: a cold `go run` takes
	// long enough on a loaded machine that an SSE client waiting for its
	// initialize meets the stream's first keepalive, which the Go SDK's
	// SSE client cannot parse. Go caches what `go run` links, so the
	// sessions' own `go run` then starts at once.
	warm, warmCancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer warmCancel()
	if out, err := exec.CommandContext(warm, "go", "run", demoDir).CombinedOutput(); err != nil {
		t.Fatalf("go run %s (stdin closed at once): %v\n%s", demoDir, err, out)
	}
	// Every process this Caddy starts carries the marker.
	marker := proctest.Marker()
	k, v, _ := strings.Cut(marker, "=")
	t.Setenv(k, v)
	base := "http://127.0.0.1:" + port
	rc := startCaddy(t, t.TempDir(), cfg, "127.0.0.1:"+port)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for name, tr := range map[string]mcp.Transport{
		"streamable": &mcp.StreamableClientTransport{Endpoint: base + "/mcp"},
		"sse":        &mcp.SSEClientTransport{Endpoint: base + "/sse"},
	} {
		client := mcp.NewClient(&mcp.Implementation{Name: "stdio-example-test", Version: "1"}, nil)
		cs, err := client.Connect(ctx, tr, nil)
		if err != nil {
			t.Fatalf("%s: connecting to the example: %v", name, err)
		}
		defer cs.Close()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 40, "b": 2}})
		if err != nil {
			t.Fatalf("%s: add: %v", name, err)
		}
		if got := res.Content[0].(*mcp.TextContent).Text; got != "42" {
			t.Errorf("%s: add = %q", name, got)
		}
	}
	// Two sessions, each a `go run` and the demo it started.
	if left := proctest.Left(marker); len(left) < 5 {
		t.Errorf("want caddy and two sessions' processes running, found %v", left)
	}

	// `caddy stop` waits for Caddy to finish stopping: bound it.
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer stopCancel()
	stop := exec.CommandContext(stopCtx, caddyBinary(t), "stop", "--address", "127.0.0.1:"+adminPort)
	stop.Env = rc.env
	if out, err := stop.CombinedOutput(); err != nil {
		t.Errorf("caddy stop: %v\n%s", err, out)
	}
	select {
	case <-rc.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("caddy still running 30s after stop with live stdio sessions")
	}
	proctest.NoneLeft(t, 5*time.Second, marker)
}
