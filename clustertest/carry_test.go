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
	"sync/atomic"
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

// TestClusterRetriedNotificationHasNoID: a notification the old owner had
// in flight when another instance took its session over goes upstream
// again from the new owner, still without an id. A request dispatched
// again goes under an id of its own (the upstream may still hold the
// first attempt); a notification given one would reach the upstream as a
// request the client never made, and its answer would have nowhere to
// go. (Catches the retry's new id given to every message with a method.)
func TestClusterRetriedNotificationHasNoID(t *testing.T) {
	const method = "notifications/roots/list_changed"
	release := make(chan struct{})
	var attempts atomic.Int32
	up := startRecordingServer(t, func(w http.ResponseWriter, r *http.Request, p upstreamPost) bool {
		if p.method != method {
			return false
		}
		if attempts.Add(1) == 1 {
			// The first attempt stays in flight on the old owner: its
			// inbox entry is not done when the session moves.
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusAccepted)
		return true
	})
	t.Cleanup(func() { close(release) }) // before the upstream closes
	c := startCluster(t, clusterOptions{upstream: up.addr})
	a, b := c.byName(t, "a"), c.byName(t, "b")
	s := openRaw(t, a.base(), nil)
	s.initialize(t, a.base())
	s.mustPost(t, b.base(), `{"jsonrpc":"2.0","method":"`+method+`"}`)
	up.wait(t, 10*time.Second, method, 1)

	cookie := s.cookie("mcp_sse_resume")
	if cookie == "" {
		t.Fatalf("the stream set no mcp_sse_resume cookie: %v", s.cookies)
	}
	s.close()
	waitState(t, c, b, s.ID, "detached")
	s2 := openRaw(t, b.base(), http.Header{"Cookie": {"mcp_sse_resume=" + cookie}})
	if s2.ID != s.ID {
		t.Fatalf("re-attached by cookie on b to session %s, want %s", s2.ID, s.ID)
	}
	sent := up.wait(t, 15*time.Second, method, 2)
	for i, p := range sent {
		if p.id != nil {
			t.Errorf("attempt %d of the notification reached the upstream with id %s: %s", i+1, p.id, p.body)
		}
	}
	s2.echo(t, b.base(), "after", "after the takeover")
}
