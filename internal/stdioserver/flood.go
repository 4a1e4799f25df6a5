package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// FloodInput is the flood tool's input.
type FloodInput struct {
	Count   int  `json:"count" jsonschema:"how many notifications to send"`
	Size    int  `json:"size,omitempty" jsonschema:"bytes of text in each"`
	EveryMS int  `json:"every_ms,omitempty" jsonschema:"milliseconds between them (default none)"`
	Detach  bool `json:"detach,omitempty" jsonschema:"answer at once and send them afterwards, outside any request"`
}

// addFlood adds the flood tool, which sends notifications of a chosen size:
// progress notifications when the call has a progress token, log messages
// (notifications/message, once the client has set a level) otherwise. It
// is how the tests fill a client's stream, or, detached, the messages of
// no request.
func addFlood(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{Name: "flood", Description: "Sends many notifications."},
		func(ctx context.Context, req *mcp.CallToolRequest, in FloodInput) (*mcp.CallToolResult, any, error) {
			text := strings.Repeat("x", max(in.Size, 1))
			token := req.Params.GetProgressToken()
			send := func(ctx context.Context, i int) error {
				if in.EveryMS > 0 && i > 0 {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(time.Duration(in.EveryMS) * time.Millisecond):
					}
				}
				if token != nil && !in.Detach {
					return req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
						ProgressToken: token, Progress: float64(i + 1), Total: float64(in.Count), Message: text})
				}
				return req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "flood", Data: text})
			}
			if in.Detach {
				go func() {
					for i := range in.Count {
						if send(context.Background(), i) != nil {
							return
						}
					}
				}()
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "detached"}}}, nil, nil
			}
			for i := range in.Count {
				if err := send(ctx, i); err != nil {
					return nil, nil, err
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("sent %d", in.Count)}}}, nil, nil
		})
}
