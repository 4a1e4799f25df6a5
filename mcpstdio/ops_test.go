package mcpstdio_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestConcurrentSessions: 100 sessions at once, half over Streamable HTTP
// and half through mcp_sse, each with a process of its own, each getting
// only its own answers: every call carries a token its answer must echo.
func TestConcurrentSessions(t *testing.T) {
	const sessions, calls = 100, 5
	tc := startCaddy(t, site(`max_processes 200
		max_processes_per_client off`))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	transports := goSDKTransports(tc)
	var wg sync.WaitGroup
	errs := make(chan error, sessions*calls)
	css := make([]*mcp.ClientSession, sessions)
	for i := range sessions {
		wg.Go(func() {
			kind := "streamable"
			if i%2 == 1 {
				kind = "sse"
			}
			client := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil)
			// Legacy sessions, one process each (at its default the
			// client would make sessionless requests, on one process).
			cs, err := client.Connect(ctx, transports[kind](), &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
			if err != nil {
				errs <- fmt.Errorf("session %d (%s): connect: %w", i, kind, err)
				return
			}
			css[i] = cs
			var inner sync.WaitGroup
			for j := range calls {
				inner.Go(func() {
					token := fmt.Sprintf("session-%d-call-%d", i, j)
					res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": token}})
					if err != nil {
						errs <- fmt.Errorf("%s: %w", token, err)
						return
					}
					if got := res.Content[0].(*mcp.TextContent).Text; got != token {
						errs <- fmt.Errorf("%s answered %q", token, got)
					}
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	procs := listProcesses(t, tc)
	pids := map[int]bool{}
	for _, p := range procs {
		pids[p.PID] = true
	}
	if len(procs) != sessions || len(pids) != sessions {
		t.Errorf("%d processes with %d distinct pids for %d sessions", len(procs), len(pids), sessions)
	}
	for _, cs := range css {
		if cs != nil {
			cs.Close()
		}
	}
	eventually(t, 20*time.Second, "every session's process to end once its client closed", func() bool {
		return len(listProcesses(t, tc)) == 0
	})
}

// TestReloadKeepsProcesses: a config reload that keeps the handler keeps
// its sessions and their processes; the session goes on working.
func TestReloadKeepsProcesses(t *testing.T) {
	tc := startCaddy(t, site(""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	streamable := connect(t, ctx, &mcp.StreamableClientTransport{Endpoint: tc.base + "/mcp", HTTPClient: handoverClient()}, nil)
	sse := connect(t, ctx, &mcp.SSEClientTransport{Endpoint: tc.base + "/sse", HTTPClient: handoverClient()}, nil)
	before := listProcesses(t, tc)
	if len(before) != 2 {
		t.Fatalf("%d processes before the reload", len(before))
	}
	tc.reload(site(`idle_timeout 5m`))
	for name, cs := range map[string]*mcp.ClientSession{"streamable": streamable, "sse": sse} {
		if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "after reload " + name}}); got != "after reload "+name {
			t.Errorf("%s: echo = %q", name, got)
		}
	}
	after := listProcesses(t, tc)
	if len(after) != 2 || after[0].PID != before[0].PID || after[1].PID != before[1].PID {
		t.Errorf("processes before %v, after %v: want the same", before, after)
	}
}

// TestAdminAndMetrics: the admin API lists the processes and ends one;
// the metrics count them.
func TestAdminAndMetrics(t *testing.T) {
	tc := startCaddy(t, `handle /metrics {
		metrics
	}
	mcp_stdio stdioserver -stderr-lines 1 {
		stop_timeout 1s
	}`)
	a, b := newRaw(t, tc), newRaw(t, tc)
	a.initialize()
	b.initialize()
	a.callTool(1, "echo", `{"text":"x"}`)
	var pa processInfo
	// stderr is read by a goroutine of its own: the round trips on stdout
	// say nothing of whether it has read the line yet.
	eventually(t, 10*time.Second, "a's process listed with its stderr line", func() bool {
		procs := listProcesses(t, tc)
		if len(procs) != 2 {
			t.Fatalf("%d processes listed", len(procs))
		}
		for _, p := range procs {
			if p.Session == a.id {
				pa = p
			}
		}
		return pa.LastStderr != ""
	})
	if pa.PID == 0 || pa.Command != "stdioserver -stderr-lines 1" || pa.Started == "" ||
		pa.MessagesIn != 3 || pa.MessagesOut != 2 || pa.LastStderr != "stderr line 0" {
		t.Errorf("process of a: %+v", pa)
	}
	metric := func(name string) string {
		t.Helper()
		resp, err := rawHTTP.Get(tc.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %s", resp.Status)
		}
		for _, line := range strings.Split(string(body), "\n") {
			if rest, ok := strings.CutPrefix(line, name+" "); ok {
				return rest
			}
		}
		return ""
	}
	if got := metric("caddy_mcp_stdio_processes_active"); got != "2" {
		t.Errorf("processes_active %q, want 2", got)
	}
	started := metric("caddy_mcp_stdio_processes_started_total")

	req, _ := http.NewRequest(http.MethodDelete, tc.admin+"/mcp_stdio/processes/"+a.id, nil)
	resp, err := rawHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), a.id) {
		t.Fatalf("admin DELETE: %s %s", resp.Status, body)
	}
	if procExists(pa.PID) {
		t.Errorf("pid %d still there after the admin DELETE answered", pa.PID)
	}
	a.post(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, http.StatusNotFound)
	if got := metric("caddy_mcp_stdio_processes_active"); got != "1" {
		t.Errorf("processes_active %q after the DELETE, want 1", got)
	}
	if got := metric(`caddy_mcp_stdio_processes_exited_total{reason="admin"}`); got == "" || got == "0" {
		t.Errorf("exited_total{admin} = %q", got)
	}
	if started == "" || started == "0" {
		t.Errorf("started_total = %q", started)
	}
	req, _ = http.NewRequest(http.MethodDelete, tc.admin+"/mcp_stdio/processes/"+a.id, nil)
	resp, err = rawHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("second admin DELETE: %s", resp.Status)
	}
}
