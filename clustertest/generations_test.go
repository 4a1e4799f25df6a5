package clustertest

// A session on the sessionless path (mcp_sse in front of a 2026-07-28
// server) taken over by another instance keeps what its client declared:
// its capabilities and its log level move with it.

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/everything"
	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
)

// sessionlessServer builds and runs the Go SDK's conformance
// everything-server at its default (sessionless); it returns host:port.
func sessionlessServer(t *testing.T) string {
	t.Helper()
	bin, err := everything.Build()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + testport.Free(t)
	cmd := exec.Command(bin, "-http", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, 30*time.Second, "the everything-server listens", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

func TestClusterSessionlessTakeover(t *testing.T) {
	c := startCluster(t, clusterOptions{upstream: sessionlessServer(t)})
	a, b := c.byName(t, "a"), c.byName(t, "b")
	s := openRaw(t, a.base(), nil)
	s.mustPost(t, c.base(), `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{}}},"clientInfo":{"name":"clustertest-raw","version":"1"}}}`)
	if m := s.waitAnswer(t, 15*time.Second, "init"); m.Error != nil || !strings.Contains(string(m.Result), `"mcp-conformance-test-server"`) {
		t.Fatalf("initialize answered %s %+v", m.Result, m.Error)
	}
	s.mustPost(t, c.base(), `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	s.mustPost(t, c.base(), `{"jsonrpc":"2.0","id":"lvl","method":"logging/setLevel","params":{"level":"info"}}`)
	s.waitAnswer(t, 10*time.Second, "lvl")
	// The owner states the session's bridge state at its next renewal;
	// the stream's end tells the cluster at once.
	cookie := s.cookie("mcp_sse_resume")
	s.close()
	waitState(t, c, b, s.ID, "detached")
	h := http.Header{}
	h.Set("Cookie", "mcp_sse_resume="+cookie)
	s2 := openRaw(t, b.base(), h)
	if s2.ID != s.ID {
		t.Fatalf("re-attached to %s, want %s", s2.ID, s.ID)
	}
	if o := c.ownerOf(t, a, s.ID); o != b {
		t.Fatalf("owner %s after the re-attach on b", o.name)
	}
	// The log level moved: the tool's log message reaches the client.
	s2.mustPost(t, c.base(), `{"jsonrpc":"2.0","id":"log","method":"tools/call","params":{"name":"test_logging_tool","arguments":{}}}`)
	s2.waitMessage(t, 10*time.Second, "the tool's log message", func(m rpcMessage) bool {
		return m.Method == "notifications/message" && strings.Contains(string(m.Params), "test_logging_tool executed")
	})
	s2.waitAnswer(t, 10*time.Second, "log")
	// The capabilities moved: the client is asked for elicitation.
	s2.mustPost(t, c.base(), `{"jsonrpc":"2.0","id":"hi","method":"tools/call","params":{"name":"test_input_required_result_elicitation","arguments":{}}}`)
	req := s2.waitMessage(t, 10*time.Second, "the input request", func(m rpcMessage) bool { return m.Method == "elicitation/create" })
	s2.mustPost(t, c.base(), fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"accept","content":{"name":"Ada"}}}`, req.ID))
	if m := s2.waitAnswer(t, 10*time.Second, "hi"); m.text() != "Hello, Ada!" {
		t.Fatalf("answer %s %+v", m.Result, m.Error)
	}
}
