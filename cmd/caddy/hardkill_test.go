package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
)

// TestHardKillEndsServers: Caddy killed with SIGKILL stops nothing
// itself; the kernel's parent-death signal ends each server it started,
// even one that ignores its stdin closing, SIGTERM and SIGPIPE (which
// would otherwise end it at its first write once Caddy is gone).
func TestHardKillEndsServers(t *testing.T) {
	server, err := proctest.Build()
	if err != nil {
		t.Fatal(err)
	}
	// Every process this Caddy starts carries the marker (LC_*, inherited
	// by default).
	marker := proctest.Marker()
	k, v, _ := strings.Cut(marker, "=")
	t.Setenv(k, v)
	port, adminPort := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`{
	admin 127.0.0.1:%s
}

http://127.0.0.1:%s {
	bind 127.0.0.1
	mcp_stdio * %s -ignore-stdin-close -ignore-sigterm -ignore-sigpipe
}
`, adminPort, port, server)
	rc := startCaddy(t, t.TempDir(), cfg, "127.0.0.1:"+port)
	caddyPID := rc.cmd.Process.Pid
	t.Cleanup(func() { proctest.NoneLeft(t, 10*time.Second, marker) })

	const sessions = 2
	for i := range sessions {
		initialize(t, "http://127.0.0.1:"+port+"/mcp", i)
	}
	var servers []int
	for _, l := range proctest.Left(marker) {
		pid, _ := strconv.Atoi(strings.Fields(l)[0])
		if pid != caddyPID {
			servers = append(servers, pid)
		}
	}
	if len(servers) != sessions {
		t.Fatalf("want %d servers running besides caddy %d, found %v", sessions, caddyPID, proctest.Left(marker))
	}

	if err := rc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rc.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("caddy still running 10s after SIGKILL")
	}
	for _, pid := range servers {
		deadline := time.Now().Add(10 * time.Second)
		for running(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("server %d still running 10s after caddy was killed with SIGKILL", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// initialize starts a session.
func initialize(t *testing.T, url string, id int) {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"hardkill","version":"1"}}}`, id+1)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("initialize: %s %s", resp.Status, b)
	}
}

// running reports whether pid is a process that has not exited (a zombie
// has; whoever adopted it reaps it).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	end := bytes.LastIndexByte(b, ')')
	return end < 0 || end+2 >= len(b) || (b[end+2] != 'Z' && b[end+2] != 'X')
}
