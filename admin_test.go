package mcpsse_test

// Operations (issue 5): the admin API, metrics and the session placeholder,
// on a real admin listener with real streams.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

type sessionList struct {
	Count    int `json:"count"`
	Sessions []struct {
		ID                string `json:"id"`
		UpstreamSessionID string `json:"upstream_session_id"`
		ProtocolVersion   string `json:"protocol_version"`
		MessagesIn        int64  `json:"messages_in"`
		MessagesOut       int64  `json:"messages_out"`
		KeepalivesSent    int64  `json:"keepalives_sent"`
		RemoteAddr        string `json:"remote_addr"`
	} `json:"sessions"`
}

func adminDo(t *testing.T, tc *testCaddy, method, path, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, tc.admin+path, strings.NewReader(body))
	// Every load replaces the admin server (see handoverClient).
	resp, err := handoverClient(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func listSessions(t *testing.T, tc *testCaddy) sessionList {
	t.Helper()
	code, body := adminDo(t, tc, "GET", "/mcp_sse/sessions", "")
	var l sessionList
	if code != 200 || json.Unmarshal([]byte(body), &l) != nil {
		t.Fatalf("GET /mcp_sse/sessions: %d %s", code, body)
	}
	return l
}

func idOf(c *rawClient) string {
	return c.endpoint[strings.Index(c.endpoint, "session_id=")+len("session_id="):]
}

func TestAdminAPI(t *testing.T) {
	upstream, deletes := countingUpstream(t, http.MethodDelete)
	tc := startCaddyWithUpstream(t, "", upstream)
	a, b := tc.openStream(t), tc.openStream(t)
	a.initialize()

	l := listSessions(t, tc)
	if l.Count != 2 || len(l.Sessions) != 2 {
		t.Fatalf("list: %+v", l)
	}
	byID := map[string]int{}
	for i, s := range l.Sessions {
		byID[s.ID] = i
	}
	sa := l.Sessions[byID[idOf(a)]]
	if sa.UpstreamSessionID == "" || sa.ProtocolVersion != "2024-11-05" || sa.MessagesIn != 2 || sa.MessagesOut != 1 || sa.KeepalivesSent != 1 {
		t.Errorf("session a as listed: %+v", sa)
	}

	code, body := adminDo(t, tc, "GET", "/mcp_sse/sessions/"+idOf(b), "")
	if code != 200 || !strings.Contains(body, idOf(b)) {
		t.Errorf("GET one: %d %s", code, body)
	}
	if code, _ := adminDo(t, tc, "GET", "/mcp_sse/sessions/no-such-session", ""); code != 404 {
		t.Errorf("GET unknown: %d, want 404", code)
	}

	// DELETE ends a's stream, DELETEs its upstream session, and drops it.
	if code, body := adminDo(t, tc, "DELETE", "/mcp_sse/sessions/"+idOf(a), ""); code != 200 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	a.waitEnd(10 * time.Second)
	eventually(t, 5*time.Second, "upstream DELETE", func() bool { return deletes.Load() == 1 })
	if l := listSessions(t, tc); l.Count != 1 || l.Sessions[0].ID != idOf(b) {
		t.Fatalf("after DELETE: %+v", l)
	}

	// Push to one session, then broadcast.
	if code, body := adminDo(t, tc, "POST", "/mcp_sse/sessions/"+idOf(b)+"/messages", `{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"one"}}`); code != 202 {
		t.Fatalf("push: %d %s", code, body)
	}
	if m := b.message(5 * time.Second); m.Method != "notifications/message" {
		t.Fatalf("pushed: %+v", m)
	}
	code, body = adminDo(t, tc, "POST", "/mcp_sse/broadcast", `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`)
	if code != 200 || !strings.Contains(body, `"sent":1`) {
		t.Fatalf("broadcast: %d %s", code, body)
	}
	if m := b.message(5 * time.Second); m.Method != "notifications/tools/list_changed" {
		t.Fatalf("broadcast arrived as %+v", m)
	}
	for _, bad := range []string{`{"jsonrpc":"2.0","id":1,"method":"ping"}`, `{"jsonrpc":"2.0","id":1,"result":{}}`, `nope`, `[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}]`} {
		if code, _ := adminDo(t, tc, "POST", "/mcp_sse/broadcast", bad); code != 400 {
			t.Errorf("broadcast of %s: %d, want 400", bad, code)
		}
		if code, _ := adminDo(t, tc, "POST", "/mcp_sse/sessions/"+idOf(b)+"/messages", bad); code != 400 {
			t.Errorf("push of %s: %d, want 400", bad, code)
		}
	}
	if code, _ := adminDo(t, tc, "PUT", "/mcp_sse/sessions", ""); code != 405 {
		t.Errorf("PUT sessions: %d, want 405", code)
	}

	// The listing reads the store the handlers share: a reload keeps it.
	tc.reload("keepalive 25s")
	if l := listSessions(t, tc); l.Count != 1 || l.Sessions[0].ID != idOf(b) {
		t.Fatalf("after a reload: %+v", l)
	}
}

// TestMetrics: the counters are on Caddy's metrics endpoint, count what
// happened, and are still served, with their counts, after a reload.
// Counters live for the process and other tests ran before, so the test
// measures deltas from a baseline.
func TestMetrics(t *testing.T) {
	tc := startCaddy(t, "")
	metric := func(name string) (float64, bool) {
		_, body := adminDo(t, tc, "GET", "/metrics", "")
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				var f float64
				_, err := fmt.Sscan(v, &f)
				return f, err == nil
			}
		}
		return 0, false
	}
	tc.openStream(t) // stays open through the reload
	if _, ok := metric("caddy_mcp_sse_sessions_opened_total"); !ok {
		t.Fatal("the metrics endpoint serves no caddy_mcp_sse_ metrics")
	}
	deltas := map[string]float64{
		"caddy_mcp_sse_sessions_opened_total":                                1,
		`caddy_mcp_sse_sessions_closed_total{reason="admin"}`:                1,
		`caddy_mcp_sse_messages_total{direction="in"}`:                       2,
		`caddy_mcp_sse_messages_total{direction="out"}`:                      1,
		`caddy_mcp_sse_dispatch_duration_seconds_count{method="initialize"}`: 1,
		"caddy_mcp_sse_keepalives_total":                                     1,
	}
	base := map[string]float64{}
	for name := range deltas {
		base[name], _ = metric(name) // absent counts as 0
	}

	c := tc.openStream(t)
	c.initialize()
	if code, _ := adminDo(t, tc, "DELETE", "/mcp_sse/sessions/"+idOf(c), ""); code != 200 {
		t.Fatal("DELETE failed")
	}
	for name, d := range deltas {
		eventually(t, 5*time.Second, fmt.Sprintf("%s grew by %v", name, d), func() bool {
			v, _ := metric(name)
			return v == base[name]+d
		})
	}
	if v, _ := metric("caddy_mcp_sse_sessions_active"); v != 1 {
		t.Errorf("sessions_active = %v, want 1", v)
	}

	tc.reload("keepalive 25s")
	if v, ok := metric("caddy_mcp_sse_sessions_opened_total"); !ok || v != base["caddy_mcp_sse_sessions_opened_total"]+1 {
		t.Errorf("after a reload sessions_opened_total = %v (served: %v), want %v", v, ok, base["caddy_mcp_sse_sessions_opened_total"]+1)
	}
	if v, _ := metric("caddy_mcp_sse_sessions_active"); v != 1 {
		t.Errorf("after a reload sessions_active = %v, want 1: the stream held by the old config", v)
	}
}

// TestSessionPlaceholder: {http.mcp_sse.session_id} is set for the
// module's requests, here appended to the access log.
func TestSessionPlaceholder(t *testing.T) {
	up := httptest.NewServer(demo.Handler())
	t.Cleanup(up.Close)
	access := filepath.Join(t.TempDir(), "access.log")
	site := fmt.Sprintf(`log {
		output file %s
		format json
	}
	log_append mcp_session {http.mcp_sse.session_id}
	mcp_sse
	reverse_proxy {upstream} {
		rewrite /mcp
	}`, access)
	tc := startCaddySite(t, site, "", strings.TrimPrefix(up.URL, "http://"))
	c := tc.openStream(t)
	c.send(`{"jsonrpc":"2.0","method":"notifications/x"}`)
	eventually(t, 5*time.Second, "the POST's access log line names its session", func() bool {
		data, _ := os.ReadFile(access)
		for _, line := range strings.Split(string(data), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["mcp_session"] == idOf(c) {
				return true
			}
		}
		return false
	})
}
