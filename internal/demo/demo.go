// Package demo is a small MCP server, built with the official Go SDK and
// served over Streamable HTTP: the upstream that Caddyfile.example puts
// behind mcp_sse, and the real upstream of the end-to-end tests. Its tools
// exercise what a bridge must carry: plain calls (echo, add), progress
// notifications during a call (slow), and a server-to-client request
// answered by the client (sample).
package demo

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// EchoInput is the echo tool's input.
type EchoInput struct {
	Text string `json:"text" jsonschema:"the text to echo back"`
}

// AddInput is the add tool's input.
type AddInput struct {
	A float64 `json:"a" jsonschema:"first addend"`
	B float64 `json:"b" jsonschema:"second addend"`
}

// SlowInput is the slow tool's input.
type SlowInput struct {
	Steps   int `json:"steps,omitempty" jsonschema:"how many progress notifications to send (default 5)"`
	DelayMS int `json:"delay_ms,omitempty" jsonschema:"milliseconds between them (default 200)"`
}

// SampleInput is the sample tool's input.
type SampleInput struct {
	Prompt string `json:"prompt" jsonschema:"what to ask the client's model"`
}

// NewServer returns the demo MCP server.
func NewServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcp-sse-demo", Version: "1.0.0"}, nil)

	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echoes the text back."},
		func(_ context.Context, _ *mcp.CallToolRequest, in EchoInput) (*mcp.CallToolResult, any, error) {
			return text(in.Text), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Adds two numbers."},
		func(_ context.Context, _ *mcp.CallToolRequest, in AddInput) (*mcp.CallToolResult, any, error) {
			return text(fmt.Sprint(in.A + in.B)), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "Works for a while, reporting progress as it goes."},
		func(ctx context.Context, req *mcp.CallToolRequest, in SlowInput) (*mcp.CallToolResult, any, error) {
			steps, delay := in.Steps, time.Duration(in.DelayMS)*time.Millisecond
			if steps <= 0 {
				steps = 5
			}
			if in.DelayMS <= 0 {
				delay = 200 * time.Millisecond
			}
			token := req.Params.GetProgressToken()
			for i := 1; i <= steps; i++ {
				select {
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				case <-time.After(delay):
				}
				if token != nil {
					err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
						ProgressToken: token,
						Progress:      float64(i),
						Total:         float64(steps),
						Message:       fmt.Sprintf("step %d of %d", i, steps),
					})
					if err != nil {
						return nil, nil, err
					}
				}
			}
			return text(fmt.Sprintf("done after %d steps", steps)), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "sample", Description: "Asks the client's model (sampling) and returns its answer."},
		func(ctx context.Context, req *mcp.CallToolRequest, in SampleInput) (*mcp.CallToolResult, any, error) {
			res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
				MaxTokens: 100,
				Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: in.Prompt}}},
			})
			if err != nil {
				return nil, nil, fmt.Errorf("sampling: %w", err)
			}
			answer := ""
			if tc, ok := res.Content.(*mcp.TextContent); ok {
				answer = tc.Text
			}
			return text(fmt.Sprintf("model %s said: %s", res.Model, answer)), nil, nil
		})
	return s
}

// Handler serves the demo server over Streamable HTTP, one MCP session per
// Mcp-Session-Id, as the Go SDK does for any server.
func Handler() http.Handler {
	s := NewServer()
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}
