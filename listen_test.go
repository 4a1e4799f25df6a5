package mcpsse_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

// listenUpstream is a Go SDK upstream whose server the test can change,
// and which counts the standalone GET streams asked of it (gets) and
// opened on it (opened). The SDK drops a notification sent before it has
// taken a GET as the session's standalone stream (it keeps no event store),
// so a GET is counted as opened only once the SDK answers it 200, which it
// does holding the stream, after taking it: what the server sends from
// then on goes to that stream.
func listenUpstream(t *testing.T) (addr string, server *mcp.Server, gets, opened *atomic.Int32) {
	t.Helper()
	server = demo.NewServer()
	inner := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	gets, opened = new(atomic.Int32), new(atomic.Int32)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.Header.Get("Mcp-Session-Id") != "" {
			gets.Add(1)
			w = &answered{ResponseWriter: w, ok: func() { opened.Add(1) }}
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	return strings.TrimPrefix(up.URL, "http://"), server, gets, opened
}

// answered is a ResponseWriter that calls ok when a 200 is written.
type answered struct {
	http.ResponseWriter
	ok func()
}

func (a *answered) WriteHeader(code int) {
	if code == http.StatusOK {
		a.ok()
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *answered) Unwrap() http.ResponseWriter { return a.ResponseWriter }

func addLateTool(server *mcp.Server) {
	mcp.AddTool(server, &mcp.Tool{Name: "late"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	})
}

// TestUpstreamNotificationsOutsideRequests: what the upstream sends on its
// own, outside any request, reaches the SSE client.
func TestUpstreamNotificationsOutsideRequests(t *testing.T) {
	addr, server, _, opened := listenUpstream(t)
	tc := startCaddyWithUpstream(t, "", addr)
	c := tc.openStream(t)
	c.initialize()
	eventually(t, 5*time.Second, "the standalone stream opened upstream", func() bool { return opened.Load() == 1 })

	addLateTool(server)
	if m := c.message(10 * time.Second); m.Method != "notifications/tools/list_changed" {
		t.Fatalf("got %+v, want the upstream's tools/list_changed", m)
	}
	// The session goes on as before.
	c.send(`{"jsonrpc":"2.0","id":"after","method":"tools/call","params":{"name":"echo","arguments":{"text":"still here"}}}`)
	if m := c.message(10 * time.Second); toolText(t, m) != "still here" {
		t.Fatalf("after the notification: %+v", m)
	}
}

func TestUpstreamListenOff(t *testing.T) {
	addr, server, gets, _ := listenUpstream(t)
	tc := startCaddyWithUpstream(t, "upstream_listen off", addr)
	c := tc.openStream(t)
	c.initialize()
	addLateTool(server)
	// A call made afterwards is the barrier: had a notification come, it
	// would be on the stream before this answer.
	c.send(`{"jsonrpc":"2.0","id":"barrier","method":"ping"}`)
	if m := c.message(10 * time.Second); string(m.ID) != `"barrier"` {
		t.Fatalf("got %+v before the barrier, with upstream_listen off", m)
	}
	if n := gets.Load(); n != 0 {
		t.Errorf("%d standalone streams opened with upstream_listen off", n)
	}
}
