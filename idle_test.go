package mcpsse_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mcpgoclient "github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// idleFor is longer than three keepalives at `keepalive 1s`.
const idleFor = 3500 * time.Millisecond

// TestIdleClients: every real client lists tools, sits idle past three
// keepalives, and lists again on the same session. The Go SDK's client
// decodes every event's data as JSON-RPC, so a keepalive that is an event
// (mcpgateway's event: keepalive / data: {}) kills it; the default
// comment line does not. Each client runs at once against one Caddy.
func TestIdleClients(t *testing.T) {
	tc := startCaddy(t, "keepalive 1s")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	goSDK := func(version string) func() error {
		return func() error {
			client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-idle", Version: "1"}, nil)
			cs, err := client.Connect(ctx, &mcp.SSEClientTransport{Endpoint: tc.base + "/sse"}, &mcp.ClientSessionOptions{ProtocolVersion: version})
			if err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			defer cs.Close()
			if got := cs.InitializeResult().ProtocolVersion; got != version {
				return fmt.Errorf("negotiated %s, want %s", got, version)
			}
			if _, err := cs.ListTools(ctx, nil); err != nil {
				return fmt.Errorf("tools/list: %w", err)
			}
			time.Sleep(idleFor)
			if _, err := cs.ListTools(ctx, nil); err != nil {
				return fmt.Errorf("tools/list after %s idle: %w", idleFor, err)
			}
			return nil
		}
	}
	clients := map[string]func() error{
		"go-sdk 2025-11-25": goSDK("2025-11-25"),
		"go-sdk 2024-11-05": goSDK("2024-11-05"),
		"mcp-go": func() error {
			c, err := mcpgoclient.NewSSEMCPClient(tc.base + "/sse")
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Start(ctx); err != nil {
				return fmt.Errorf("start: %w", err)
			}
			init := mcpgo.InitializeRequest{}
			init.Params.ClientInfo = mcpgo.Implementation{Name: "mcp-go-idle", Version: "1"}
			if _, err := c.Initialize(ctx, init); err != nil {
				return fmt.Errorf("initialize: %w", err)
			}
			if _, err := c.ListTools(ctx, mcpgo.ListToolsRequest{}); err != nil {
				return fmt.Errorf("tools/list: %w", err)
			}
			time.Sleep(idleFor)
			if _, err := c.ListTools(ctx, mcpgo.ListToolsRequest{}); err != nil {
				return fmt.Errorf("tools/list after %s idle: %w", idleFor, err)
			}
			return nil
		},
		"typescript": func() error {
			cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "tsclient", "idle.mjs"), tc.base+"/sse", fmt.Sprint(idleFor.Milliseconds()))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("node: %v\n%s", err, stderr.Bytes())
			}
			var got struct{ Before, After int }
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || got.Before != len(demoTools) || got.After != len(demoTools) {
				return fmt.Errorf("node printed %q", stdout.Bytes())
			}
			return nil
		},
	}
	var wg sync.WaitGroup
	for name, run := range clients {
		wg.Go(func() {
			if err := run(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	wg.Wait()
	if n := len(tc.logs("session opened")); n != len(clients) {
		t.Errorf("%d sessions opened for %d clients: a client reconnected", n, len(clients))
	}
}
