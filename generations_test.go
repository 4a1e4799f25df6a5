package mcpsse_test

// Legacy clients (the Go SDK over HTTP+SSE at 2025-11-25 and 2024-11-05,
// the TypeScript SDK) through mcp_sse to the Go SDK's conformance
// everything-server, sessionless (its default, MCP 2026-07-28) and
// stateful (-stateless=false): what a client gets must not depend on
// which.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpsse/caddy-mcp-sse/internal/everything"
)

// everythingServer builds the Go SDK's conformance everything-server, at
// the SDK version go.mod requires, from the module cache, and runs it on
// a loopback port; it returns host:port.
func everythingServer(t *testing.T, stateless bool) string {
	t.Helper()
	return startEverything(t, stateless).addr
}

// everythingProcess is a running everything-server.
type everythingProcess struct {
	addr string
	kill func()
}

// everythingServerProcess is a sessionless everything-server the test
// may kill.
func everythingServerProcess(t *testing.T) everythingProcess {
	t.Helper()
	return startEverything(t, true)
}

func startEverything(t *testing.T, stateless bool) everythingProcess {
	t.Helper()
	everythingBin, err := everything.Build()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + freePort(t)
	cmd := exec.Command(everythingBin, "-http", addr, fmt.Sprintf("-stateless=%t", stateless))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	eventually(t, 30*time.Second, "the everything-server listens", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return everythingProcess{addr: addr, kill: kill}
}

// everythingSite fronts the everything-server, which serves MCP at /.
const everythingSite = `mcp_sse {
		{settings}
	}
	reverse_proxy {upstream} {
		rewrite /
	}`

// upstreamGenerations are the everything-server's two modes.
var upstreamGenerations = []struct {
	name      string
	stateless bool
	protocol  string // the admin API's upstream_protocol of a session
}{
	{"sessionless", true, "2026-07-28"},
	{"stateful", false, "legacy"},
}

// inputClient is a Go SDK client that answers every kind of input: it
// fills each elicitation form from the fields its schema asks for,
// samples "Paris", and exposes one root.
func inputClient(elicitations *int) *mcp.Client {
	var mu sync.Mutex
	c := mcp.NewClient(&mcp.Implementation{Name: "generations-e2e", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			if elicitations != nil {
				*elicitations++
			}
			mu.Unlock()
			content := map[string]any{}
			if s, ok := req.Params.RequestedSchema.(map[string]any); ok {
				props, _ := s["properties"].(map[string]any)
				for name := range props {
					content[name] = map[string]any{"name": "Ada", "color": "blue", "ok": true, "context": "ctx"}[name]
				}
			}
			return &mcp.ElicitResult{Action: "accept", Content: content}, nil
		},
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Role: "assistant", Model: "test", Content: &mcp.TextContent{Text: "Paris"}}, nil
		},
	})
	c.AddRoots(&mcp.Root{URI: "file:///tmp/root", Name: "root"})
	return c
}

func connectVersion(t *testing.T, ctx context.Context, c *mcp.Client, tc *testCaddy, version string) *mcp.ClientSession {
	t.Helper()
	cs, err := c.Connect(ctx, &mcp.SSEClientTransport{Endpoint: tc.base + "/sse"}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect at %s: %v", version, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func callText(ctx context.Context, cs *mcp.ClientSession, tool string, args map[string]any) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %s", b.String())
	}
	return b.String(), nil
}

// inputTools are the everything-server's MRTR tools and what a client
// answering as inputClient does gets from each.
var inputTools = []struct{ tool, want string }{
	{"test_input_required_result_elicitation", "Hello, Ada!"},
	{"test_input_required_result_sampling", "Sampling response: Paris"},
	{"test_input_required_result_list_roots", "Client exposed 1 root(s): file:///tmp/root"},
	{"test_input_required_result_request_state", "state-ok: requestState received and confirmation accepted"},
	{"test_input_required_result_multiple_inputs", "Paris Ada — 1 root(s) visible"},
	{"test_input_required_result_multi_round", "Multi-round complete: Ada likes blue"},
	{"test_input_required_result_tampered_state", "state-ok: requestState received and confirmation accepted"},
	{"test_input_required_result_capabilities", "Capability-aware input requests fulfilled"},
	{"test_missing_capability", "Client declared the sampling capability; tool executed."},
	{"test_simple_text", "This is a simple text response for testing."},
}

// TestGenerationsGoSDK runs every input tool and the input prompt, through
// the Go SDK's HTTP+SSE client at 2025-11-25, against both generations of
// the everything-server; the admin API names each session's generation.
func TestGenerationsGoSDK(t *testing.T) {
	for _, up := range upstreamGenerations {
		t.Run(up.name, func(t *testing.T) {
			tc := startCaddySite(t, everythingSite, "", everythingServer(t, up.stateless))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cs := connectVersion(t, ctx, inputClient(nil), tc, "2025-11-25")
			if got := cs.InitializeResult().ServerInfo.Name; got != "mcp-conformance-test-server" {
				t.Errorf("serverInfo.name = %q", got)
			}
			if got := cs.InitializeResult().ProtocolVersion; got != "2025-11-25" {
				t.Errorf("protocolVersion = %q", got)
			}
			for _, c := range inputTools {
				got, err := callText(ctx, cs, c.tool, nil)
				if err != nil || got != c.want {
					t.Errorf("%s: %q, %v; want %q", c.tool, got, err, c.want)
				}
			}
			res, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "test_input_required_result_prompt"})
			if err != nil || len(res.Messages) != 1 || res.Messages[0].Content.(*mcp.TextContent).Text != "Context: ctx" {
				t.Errorf("test_input_required_result_prompt: %+v, %v", res, err)
			}
			code, body := adminDo(t, tc, "GET", "/mcp_sse/sessions", "")
			var list struct {
				Sessions []struct {
					UpstreamProtocol string `json:"upstream_protocol"`
				} `json:"sessions"`
			}
			if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Sessions) != 1 ||
				list.Sessions[0].UpstreamProtocol != up.protocol {
				t.Errorf("admin API: %d %s; want upstream_protocol %q", code, body, up.protocol)
			}
		})
	}
}

// TestGenerationsGoSDK2024 is the Go SDK's client at 2024-11-05, which
// knows no elicitation: sampling and roots work on both generations.
func TestGenerationsGoSDK2024(t *testing.T) {
	for _, up := range upstreamGenerations {
		t.Run(up.name, func(t *testing.T) {
			tc := startCaddySite(t, everythingSite, "", everythingServer(t, up.stateless))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cs := connectVersion(t, ctx, inputClient(nil), tc, "2024-11-05")
			if got := cs.InitializeResult().ProtocolVersion; got != "2024-11-05" {
				t.Errorf("protocolVersion = %q", got)
			}
			for _, c := range inputTools {
				switch c.tool {
				case "test_input_required_result_sampling", "test_input_required_result_list_roots",
					"test_missing_capability", "test_simple_text":
				default:
					continue
				}
				got, err := callText(ctx, cs, c.tool, nil)
				if err != nil || got != c.want {
					t.Errorf("%s: %q, %v; want %q", c.tool, got, err, c.want)
				}
			}
		})
	}
}

// TestGenerationsTypeScript runs the TypeScript SDK's SSE client, with
// its elicitation, sampling and roots handlers, through every input tool
// against both generations.
func TestGenerationsTypeScript(t *testing.T) {
	dir := filepath.Join("testdata", "tsclient")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Fatalf("TypeScript SDK not installed (run scripts/test, or npm ci --prefix %s): %v", dir, err)
	}
	for _, up := range upstreamGenerations {
		t.Run(up.name, func(t *testing.T) {
			tc := startCaddySite(t, everythingSite, "", everythingServer(t, up.stateless))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := []string{filepath.Join(dir, "generations.mjs"), tc.base + "/sse"}
			for _, c := range inputTools {
				args = append(args, c.tool)
			}
			cmd := exec.CommandContext(ctx, "node", args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("node client: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
			}
			var got struct {
				Server string            `json:"server"`
				Texts  map[string]string `json:"texts"`
				Prompt string            `json:"prompt"`
			}
			if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
				t.Fatalf("node client printed %q: %v", stdout.String(), err)
			}
			if got.Server != "mcp-conformance-test-server" || got.Prompt != "Context: ctx" {
				t.Errorf("server %q prompt %q", got.Server, got.Prompt)
			}
			for _, c := range inputTools {
				if !up.stateless && c.tool == "test_input_required_result_multi_round" {
					// The stateful server fulfils one round for a legacy
					// client and then answers with the second round's
					// inputRequests, which a legacy client cannot act on
					// (the Go SDK's client happens to loop on them itself;
					// the TypeScript SDK's does not). Through the bridge, a
					// sessionless server gives the same client every round.
					continue
				}
				if got.Texts[c.tool] != c.want {
					t.Errorf("%s: %q, want %q", c.tool, got.Texts[c.tool], c.want)
				}
			}
		})
	}
}
