package mcpstdio_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// endedLine waits for the log line of a process's end and returns it.
func endedLine(t *testing.T, tc *testCaddy) map[string]any {
	t.Helper()
	var line map[string]any
	eventually(t, 15*time.Second, "a 'process ended' log line", func() bool {
		for _, l := range tc.logs("http.handlers.mcp_stdio") {
			if l["msg"] == "process ended" {
				line = l
				return true
			}
		}
		return false
	})
	return line
}

func TestCommandNotFound(t *testing.T) {
	tc := startCaddy(t, `mcp_stdio no-such-mcp-server-xyz --flag`)
	c := newRaw(t, tc)
	r := c.post(initBody, http.StatusOK)
	if len(r.msgs) != 1 || r.msgs[0].Error == nil || string(r.msgs[0].ID) != "0" {
		t.Fatalf("initialize answered %s, want a JSON-RPC error", r.body)
	}
	if msg := r.msgs[0].Error.Message; !strings.Contains(msg, "no-such-mcp-server-xyz") || !strings.Contains(msg, "not found") {
		t.Errorf("error %q does not name the command and the cause", msg)
	}
	if id := r.header.Get("Mcp-Session-Id"); id != "" {
		t.Errorf("a failed start named a session: %q", id)
	}
}

// TestExitMidCall: every request in flight gets a JSON-RPC error with the
// exit status and the last stderr line, and the session is gone.
func TestExitMidCall(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	c.initialize()
	slow := make(chan reply, 1)
	go func() {
		slow <- c.do(http.MethodPost, `{"jsonrpc":"2.0","id":"long","method":"tools/call","params":{"name":"slow","arguments":{"steps":1,"delay_ms":20000}}}`)
	}()
	eventually(t, 5*time.Second, "the slow call to reach the process", func() bool {
		for _, p := range listProcesses(t, tc) {
			if p.MessagesIn >= 3 {
				return true
			}
		}
		return false
	})
	r := c.callTool(9, "crash", `{"code":5}`)
	check := func(r reply, id string) {
		t.Helper()
		if len(r.msgs) != 1 || r.msgs[0].Error == nil || string(r.msgs[0].ID) != id {
			t.Fatalf("call %s answered %d %s, want a JSON-RPC error", id, r.status, r.body)
		}
		e := r.msgs[0].Error
		if !strings.Contains(e.Message, "exit status 5") || !strings.Contains(e.Message, "crashing on request") {
			t.Errorf("error %q lacks the exit status or the last stderr line", e.Message)
		}
		if e.Data["exit_code"] != float64(5) || !strings.Contains(fmt.Sprint(e.Data["last_stderr"]), "crashing") {
			t.Errorf("error data %v", e.Data)
		}
	}
	check(r, "9")
	select {
	case r := <-slow:
		check(r, `"long"`)
	case <-time.After(15 * time.Second):
		t.Fatal("the call in flight was not answered after the crash")
	}
	c.post(`{"jsonrpc":"2.0","id":10,"method":"tools/list"}`, http.StatusNotFound)
	if l := endedLine(t, tc); l["reason"] != "crashed" {
		t.Errorf("ended with reason %v, want crashed", l["reason"])
	}
}

func TestBannerOnStdout(t *testing.T) {
	tc := startCaddy(t, `mcp_stdio stdioserver -banner "Demo server v1 listening on stdio"`)
	c := newRaw(t, tc)
	c.initialize()
	if got := toolText(t, c.callTool(1, "echo", `{"text":"still works"}`).msgs[0]); got != "still works" {
		t.Errorf("echo = %q", got)
	}
	found := false
	for _, l := range tc.logs("http.handlers.mcp_stdio") {
		found = found || (strings.Contains(l["msg"].(string), "not a JSON-RPC message") && l["line"] == "Demo server v1 listening on stdio")
	}
	if !found {
		t.Error("the banner was not logged as a skipped line")
	}
}

// TestStopStages: DELETE ends a process that ignores stdin closing with
// SIGTERM, one that also ignores SIGTERM with SIGKILL, and a server's own
// child with its group.
func TestStopStages(t *testing.T) {
	tests := []struct {
		name  string
		flags string
		stage string
	}{
		{"exits when stdin closes", "", "stdin"},
		{"ignores stdin close", "-ignore-stdin-close", "sigterm"},
		{"ignores SIGTERM", "-ignore-stdin-close -ignore-sigterm", "sigkill"},
		{"starts a child", "-child", "stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := startCaddy(t, `mcp_stdio stdioserver `+tt.flags+` {
				stop_timeout 300ms
			}`)
			c := newRaw(t, tc)
			c.initialize()
			if r := c.do(http.MethodDelete, ""); r.status != http.StatusNoContent {
				t.Fatalf("DELETE: %d", r.status)
			}
			l := endedLine(t, tc)
			if l["stop_stage"] != tt.stage || l["reason"] != "deleted" {
				t.Errorf("ended at stage %v for %v, want %s for deleted", l["stop_stage"], l["reason"], tt.stage)
			}
			// Before Caddy stops: DELETE alone left nothing.
			noneLeft(t, 5*time.Second)
		})
	}
}

func TestStartupTimeout(t *testing.T) {
	tc := startCaddy(t, `mcp_stdio sleep 30 {
		startup_timeout 500ms
		stop_timeout 200ms
	}`)
	c := newRaw(t, tc)
	start := time.Now()
	r := c.post(initBody, http.StatusOK)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("initialize took %s with startup_timeout 500ms", took)
	}
	if len(r.msgs) != 1 || r.msgs[0].Error == nil || !strings.Contains(r.msgs[0].Error.Message, `"sleep 30" did not answer initialize within 500ms`) {
		t.Fatalf("initialize answered %s", r.body)
	}
	if id := r.header.Get("Mcp-Session-Id"); id != "" {
		t.Errorf("a session that never started was named: %q", id)
	}
	if l := endedLine(t, tc); l["reason"] != "startup_timeout" {
		t.Errorf("ended for %v", l["reason"])
	}
	noneLeft(t, 5*time.Second)
}

func TestLineOverMaxMessageSize(t *testing.T) {
	tc := startCaddy(t, `mcp_stdio stdioserver -big-line 5000 {
		max_message_size 4KiB
	}`)
	c := newRaw(t, tc)
	r := c.post(initBody, http.StatusOK)
	if len(r.msgs) != 1 || r.msgs[0].Error == nil || !strings.Contains(r.msgs[0].Error.Message, "max_message_size") {
		t.Fatalf("initialize answered %s, want an error naming max_message_size", r.body)
	}
	if l := endedLine(t, tc); l["reason"] != "message_too_large" || !strings.Contains(l["exit"].(string), "exceeds max_message_size") {
		t.Errorf("ended with %v", l)
	}
}
