package clustertest

// What a message posted on one instance carries to the owner that
// dispatches it, as the upstream sees it.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

// upstreamPost is one message POST as the upstream read it.
type upstreamPost struct {
	header http.Header
	body   string
	method string
	id     json.RawMessage // nil when the message has no id member
}

// recordingServer is the demo MCP server, in this process, recording the
// message POSTs it receives; hold, if set, runs for each before the demo
// server sees it and may answer it itself (it returns true then).
type recordingServer struct {
	addr string
	mu   sync.Mutex
	seen []upstreamPost
	got  chan struct{} // closed, and replaced, at each POST recorded
}

func startRecordingServer(t *testing.T, hold func(w http.ResponseWriter, r *http.Request, p upstreamPost) bool) *recordingServer {
	t.Helper()
	rs := &recordingServer{got: make(chan struct{})}
	inner := demo.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			inner.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var m map[string]json.RawMessage
		_ = json.Unmarshal(body, &m)
		p := upstreamPost{header: r.Header.Clone(), body: string(body), id: m["id"]}
		_ = json.Unmarshal(m["method"], &p.method)
		rs.mu.Lock()
		rs.seen = append(rs.seen, p)
		close(rs.got)
		rs.got = make(chan struct{})
		rs.mu.Unlock()
		if hold != nil && hold(w, r, p) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	rs.addr = strings.TrimPrefix(up.URL, "http://")
	return rs
}

// wait waits until the server has received n POSTs of method and returns
// them, in order.
func (rs *recordingServer) wait(t *testing.T, within time.Duration, method string, n int) []upstreamPost {
	t.Helper()
	deadline := time.After(within)
	for {
		rs.mu.Lock()
		var found []upstreamPost
		for _, p := range rs.seen {
			if p.method == method {
				found = append(found, p)
			}
		}
		got := rs.got
		rs.mu.Unlock()
		if len(found) >= n {
			return found
		}
		select {
		case <-got:
		case <-deadline:
			t.Fatalf("the upstream received %d %s POSTs within %s, want %d", len(found), method, within, n)
		}
	}
}

// TestClusterForwardedHeaders: a client's X-Forwarded-For/Proto/Host,
// on a message posted on an instance that does not own its session,
// travel with it to the owner, whose reverse_proxy extends them since
// Caddy trusts the client (trusted_proxies), as it would on one
// instance. (Catches an inbox entry that does not carry them: the owner's
// reverse_proxy then sees none, and the proxy's are lost.)
func TestClusterForwardedHeaders(t *testing.T) {
	up := startRecordingServer(t, nil)
	c := startCluster(t, clusterOptions{
		upstream: up.addr,
		global:   "servers {\ntrusted_proxies static 127.0.0.1/32\n}",
	})
	a, b := c.byName(t, "a"), c.byName(t, "b")
	s := openRaw(t, a.base(), http.Header{
		"X-Forwarded-For":   {"203.0.113.7"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"mcp.example.com"},
	})
	defer s.close()
	s.initialize(t, a.base())
	if o := c.ownerOf(t, b, s.ID); o != a {
		t.Fatalf("session %s is owned by %s, want a", s.ID, o.name)
	}
	s.echo(t, b.base(), "fwd", "posted on b")
	calls := up.wait(t, 10*time.Second, "tools/call", 1)
	if len(calls) != 1 {
		t.Fatalf("the upstream got %d tools/call, want 1", len(calls))
	}
	h := calls[0].header
	if got := strings.Join(h.Values("X-Forwarded-For"), ", "); got != "203.0.113.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For upstream: %q, want the client's extended by its address, %q", got, "203.0.113.7, 127.0.0.1")
	}
	if got := h.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto upstream: %q, want https", got)
	}
	if got := h.Get("X-Forwarded-Host"); got != "mcp.example.com" {
		t.Errorf("X-Forwarded-Host upstream: %q, want mcp.example.com", got)
	}
}
