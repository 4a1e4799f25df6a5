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

// A call waiting on its client for input when its owner dies: the
// instance that takes the session over dispatches the call again (its
// inbox entry was never acknowledged), the upstream's rounds start anew,
// and the client, asked again on its re-attached stream, gets the final
// answer once, under its own id. The answer to the dead owner's question
// finds nothing to answer.
func TestClusterSessionlessRoundTakeover(t *testing.T) {
	c := startCluster(t, clusterOptions{upstream: sessionlessServer(t)})
	a := c.byName(t, "a")
	s := openRaw(t, a.base(), nil)
	s.mustPost(t, c.base(), `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{}}},"clientInfo":{"name":"clustertest-raw","version":"1"}}}`)
	if m := s.waitAnswer(t, 15*time.Second, "init"); m.Error != nil {
		t.Fatalf("initialize answered %+v", m.Error)
	}
	s.mustPost(t, c.base(), `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	owner := c.ownerOf(t, a, s.ID)
	s.mustPost(t, c.base(), `{"jsonrpc":"2.0","id":"hi","method":"tools/call","params":{"name":"test_input_required_result_elicitation","arguments":{}}}`)
	first := s.waitMessage(t, 10*time.Second, "the input request", func(m rpcMessage) bool { return m.Method == "elicitation/create" })
	seen := s.lastEventID()
	owner.proc.Kill9()
	s.waitEnd(t, 10*time.Second)

	h := http.Header{}
	h.Set("Last-Event-ID", seen)
	s2 := openRaw(t, c.base(), h)
	if s2.ID != s.ID {
		t.Fatalf("re-attached to %s, want %s", s2.ID, s.ID)
	}
	if o := c.ownerOf(t, c.live()[0], s.ID); o == owner {
		t.Fatalf("the killed instance %s still owns the session", owner.name)
	}
	again := s2.waitMessage(t, 30*time.Second, "the input request asked again", func(m rpcMessage) bool {
		return m.Method == "elicitation/create" && m.id() != first.id()
	})
	s2.mustPost(t, c.base(), fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"accept","content":{"name":"Eve"}}}`, first.ID))
	s2.mustPost(t, c.base(), fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"accept","content":{"name":"Ada"}}}`, again.ID))
	if m := s2.waitAnswer(t, 15*time.Second, "hi"); m.text() != "Hello, Ada!" {
		t.Fatalf("answer %s %+v", m.Result, m.Error)
	}
	// One answer, and the session goes on.
	s2.mustPost(t, c.base(), `{"jsonrpc":"2.0","id":"ping","method":"ping"}`)
	s2.waitAnswer(t, 10*time.Second, "ping")
	if n := answers(s2, "hi"); n != 1 {
		t.Errorf("%d answers to the call on the re-attached stream, want 1", n)
	}
}
