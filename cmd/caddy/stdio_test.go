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
// and no process it started is left. Caddy runs with a PATH that holds
// nothing: a session must start the demo without a Go toolchain (nothing
// compiled when a session starts, whatever the state of Go's caches).
func TestStdioExampleCaddyfile(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "Caddyfile.stdio.example"))
	if err != nil {
		t.Fatal(err)
	}
	port, adminPort := freePort(t), freePort(t)
	cfg := strings.NewReplacer(
		"admin localhost:2019", "admin 127.0.0.1:"+adminPort,
		"http://localhost:8080", "http://127.0.0.1:"+port,
	).Replace(string(example))
	if !strings.Contains(cfg, adminPort) || !strings.Contains(cfg, "127.0.0.1:"+port) {
		t.Fatalf("Caddyfile.stdio.example no longer has what this test rewrites:\n%s", example)
	}
	caddyBinary(t) // built with the test's PATH, before it is emptied
	t.Setenv("PATH", t.TempDir())
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
		began := time.Now()
		cs, err := client.Connect(ctx, tr, nil)
		if err != nil {
			t.Fatalf("%s: connecting to the example: %v", name, err)
		}
		// Reported, not asserted: the machine may be loaded.
		t.Logf("%s: session started and initialized in %s", name, time.Since(began).Round(time.Millisecond))
		defer cs.Close()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 40, "b": 2}})
		if err != nil {
			t.Fatalf("%s: add: %v", name, err)
		}
		if got := res.Content[0].(*mcp.TextContent).Text; got != "42" {
			t.Errorf("%s: add = %q", name, got)
		}
	}
	// Caddy, and one demo process per session: no `go run` between them.
	if left := proctest.Left(marker); len(left) != 3 {
		t.Errorf("want caddy and the two sessions' demo processes running, found %v", left)
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
