// Command stdioserver is the demo MCP server (tools echo, add, slow,
// sample) served over stdio, with tools and faults the tests of the stdio
// and mcpstdio packages need: env and cwd report the process's
// environment, crash exits in the middle of a call, flood sends
// notifications of a chosen size, block runs until cancelled, ask_later
// asks the client outside any request, and flags make it misbehave the ways
// real servers do.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

var (
	banner           = flag.String("banner", "", "print this line on stdout before serving")
	ignoreStdinClose = flag.Bool("ignore-stdin-close", false, "keep running after stdin closes")
	ignoreSIGTERM    = flag.Bool("ignore-sigterm", false, "ignore SIGTERM")
	ignoreSIGPIPE    = flag.Bool("ignore-sigpipe", false, "ignore SIGPIPE: keep running once stdout and stderr have no reader")
	child            = flag.Bool("child", false, "start a child process of its own that outlives it")
	sleeper          = flag.Bool("sleeper", false, "only sleep (the child of -child)")
	stderrLines      = flag.Int("stderr-lines", 0, "write this many lines to stderr at start")
	bigLine          = flag.Int("big-line", 0, "write a stdout line of this many bytes at start")
	stdoutLines      = flag.Int("stdout-lines", 0, "write this many lines that are not JSON-RPC to stdout at start")
)

// NameInput is the env tool's input.
type NameInput struct {
	Name string `json:"name" jsonschema:"the environment variable"`
}

// CrashInput is the crash tool's input.
type CrashInput struct {
	Code int `json:"code,omitempty" jsonschema:"exit status (default 3)"`
}

func main() {
	flag.Parse()
	if *sleeper {
		time.Sleep(time.Hour)
		return
	}
	if *ignoreSIGTERM {
		signal.Ignore(syscall.SIGTERM)
	}
	if *ignoreSIGPIPE {
		signal.Ignore(syscall.SIGPIPE)
	}
	if *child {
		c := exec.Command(os.Args[0], "-sleeper")
		// The child holds the server's stdout and stderr, as a launcher's
		// children do.
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "starting child:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "child pid %d\n", c.Process.Pid)
	}
	if *banner != "" {
		fmt.Println(*banner)
	}
	for i := range *stderrLines {
		fmt.Fprintf(os.Stderr, "stderr line %d\n", i)
	}
	for i := range *stdoutLines {
		fmt.Printf("stdout line %d\n", i)
	}
	if *bigLine > 0 {
		b := make([]byte, *bigLine)
		for i := range b {
			b[i] = 'x'
		}
		fmt.Printf("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"data\":\"%s\"}}\n", b)
	}

	s := demo.NewServer()
	addFlood(s)
	mcp.AddTool(s, &mcp.Tool{Name: "env", Description: "Returns an environment variable."},
		func(_ context.Context, _ *mcp.CallToolRequest, in NameInput) (*mcp.CallToolResult, any, error) {
			return text(os.Getenv(in.Name)), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "cwd", Description: "Returns the working directory."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			wd, err := os.Getwd()
			return text(wd), nil, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "crash", Description: "Exits in the middle of the call."},
		func(_ context.Context, _ *mcp.CallToolRequest, in CrashInput) (*mcp.CallToolResult, any, error) {
			code := in.Code
			if code == 0 {
				code = 3
			}
			fmt.Fprintf(os.Stderr, "fatal: crashing on request with status %d\n", code)
			os.Exit(code)
			return nil, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "block", Description: "Runs until cancelled, and says so on stderr."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			fmt.Fprintln(os.Stderr, "block: started")
			<-ctx.Done()
			fmt.Fprintln(os.Stderr, "block: cancelled")
			return nil, nil, ctx.Err()
		})
	mcp.AddTool(s, &mcp.Tool{Name: "ask_later", Description: "Answers, then asks the client for its roots outside any request, and says on stderr what came back."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			go func() {
				time.Sleep(50 * time.Millisecond)
				_, err := req.Session.ListRoots(context.Background(), nil)
				fmt.Fprintf(os.Stderr, "ask_later: roots/list answered, error: %v\n", err)
			}()
			return text("asked later"), nil, nil
		})
	err := s.Run(context.Background(), &mcp.StdioTransport{})
	fmt.Fprintln(os.Stderr, "server stopped:", err)
	if *ignoreStdinClose {
		time.Sleep(time.Hour)
	}
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}
