package main

// The README's first command, as a test: build this binary, run it on
// Caddyfile.example, talk to the demo through it with a real SSE client,
// then `caddy stop` with streams still open.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
)

// freePort is a port for a Caddy this test starts (see testport for why
// not simply port 0).
func freePort(t *testing.T) string { return testport.Free(t) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// caddyBinary builds this command once for all tests.
func caddyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcp-sse-caddy-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "caddy")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	proctest.RemoveAll()
	os.Exit(code)
}

// runningCaddy is the built binary running on a Caddyfile of a test's own.
type runningCaddy struct {
	cmd    *exec.Cmd
	env    []string
	exited chan struct{}
}

// startCaddy writes cfg to dir and runs the binary on it, with HOME and
// the XDG directories in dir, prefixed by wrap (e.g. ip netns exec NS).
// It waits until addr accepts connections; the process is killed when
// the test ends, and its output shown if the test failed.
func startCaddy(t *testing.T, dir, cfg, addr string, wrap ...string) *runningCaddy {
	t.Helper()
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(wrap, caddyBinary(t), "run", "--config", cfgPath)
	rc := &runningCaddy{
		cmd:    exec.Command(args[0], args[1:]...),
		env:    append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir),
		exited: make(chan struct{}),
	}
	rc.cmd.Env = rc.env
	out, err := os.Create(filepath.Join(dir, "caddy.out"))
	if err != nil {
		t.Fatal(err)
	}
	rc.cmd.Stdout, rc.cmd.Stderr = out, out
	if err := rc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { rc.cmd.Wait(); close(rc.exited) }()
	t.Cleanup(func() {
		select {
		case <-rc.exited:
		default:
			rc.cmd.Process.Kill()
			<-rc.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("caddy output:\n%s", b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return rc
		}
		select {
		case <-rc.exited:
			t.Fatalf("caddy exited before listening on %s: %v", addr, rc.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			// Have the Go runtime dump every goroutine into the output the
			// cleanup shows, so a hang says where it hangs.
			rc.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-rc.exited:
			case <-time.After(2 * time.Second):
			}
			t.Fatalf("caddy did not start listening on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop runs `caddy stop` against the admin address.
func (rc *runningCaddy) stop(t *testing.T, admin string) {
	t.Helper()
	stop := exec.Command(caddyBinary(t), "stop", "--address", admin)
	stop.Env = rc.env
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("caddy stop: %v\n%s", err, out)
	}
}

func TestExampleCaddyfile(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	port, adminPort := freePort(t), freePort(t)
	cfg := strings.NewReplacer(
		"admin localhost:2019", "admin 127.0.0.1:"+adminPort,
		"http://localhost:8080", "http://127.0.0.1:"+port,
	).Replace(string(example))
	if !strings.Contains(cfg, adminPort) || !strings.Contains(cfg, "127.0.0.1:"+port) {
		t.Fatalf("Caddyfile.example no longer has the addresses this test rewrites:\n%s", example)
	}
	base := "http://127.0.0.1:" + port
	rc := startCaddy(t, t.TempDir(), cfg, "127.0.0.1:"+port)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "example-test", Version: "1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: "42"}}, nil
		},
	})
	cs, err := client.Connect(ctx, &mcp.SSEClientTransport{Endpoint: base + "/sse"}, nil)
	if err != nil {
		t.Fatalf("connecting to the example: %v", err)
	}
	defer cs.Close()
	calls := []struct {
		name string
		args map[string]any
		want string
	}{
		{"echo", map[string]any{"text": "hello"}, "hello"},
		{"add", map[string]any{"a": 1, "b": 2}, "3"},
		{"slow", map[string]any{"steps": 2, "delay_ms": 10}, "done after 2 steps"},
		{"sample", map[string]any{"prompt": "meaning?"}, "model m said: 42"},
	}
	for _, c := range calls {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.name, Arguments: c.args})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := res.Content[0].(*mcp.TextContent).Text; got != c.want {
			t.Errorf("%s = %q, want %q", c.name, got, c.want)
		}
	}

	// A raw stream too, to see it end when Caddy stops.
	resp, err := http.Get(base + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	streamEnded := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
		close(streamEnded)
	}()

	stopped := time.Now()
	rc.stop(t, "127.0.0.1:"+adminPort)
	select {
	case <-rc.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("caddy did not exit within 15s of `caddy stop` with streams open")
	}
	select {
	case <-streamEnded:
	case <-time.After(5 * time.Second):
		t.Fatal("the open stream did not end when caddy stopped")
	}
	t.Logf("caddy exited %s after stop was sent, with 2 streams open", time.Since(stopped).Round(time.Millisecond))
}
