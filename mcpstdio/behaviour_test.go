package mcpstdio_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func site(settings string) string { return strings.ReplaceAll(stdioSite, "{settings}", settings) }

// TestWireProgressBeforeResult reads the wire: a call with a progress
// token is answered as an event stream carrying its progress
// notifications, in order, then its result; a request answered alone is
// answered as JSON.
func TestWireProgressBeforeResult(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	init := c.initialize()
	if ct := init.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("initialize answered as %q, want application/json", ct)
	}
	r := c.post(`{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"slow","arguments":{"steps":3,"delay_ms":10},"_meta":{"progressToken":"tok"}}}`, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("call with progress answered as %q", ct)
	}
	if len(r.msgs) != 4 {
		t.Fatalf("want 3 progress notifications then the result, got %s", r.body)
	}
	for i, m := range r.msgs[:3] {
		var p struct {
			ProgressToken string  `json:"progressToken"`
			Progress      float64 `json:"progress"`
		}
		if m.Method != "notifications/progress" || json.Unmarshal(m.Params, &p) != nil || p.ProgressToken != "tok" || p.Progress != float64(i+1) {
			t.Errorf("message %d: %s %s, want progress %d", i, m.Method, m.Params, i+1)
		}
	}
	if last := r.msgs[3]; string(last.ID) != `"call-1"` || toolText(t, last) != "done after 3 steps" {
		t.Errorf("last message %+v, want the result with the client's id", last)
	}
	r = c.post(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" || len(r.msgs) != 1 || string(r.msgs[0].ID) != "7" {
		t.Errorf("tools/list answered %q %s", ct, r.body)
	}
}

// TestSamplingOnRequestStream: with no standalone stream open, the
// server's sampling request goes out on the call's own stream; the
// client's answer, POSTed, gets 202 and reaches the process, whose result
// then ends the stream.
func TestSamplingOnRequestStream(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	c.initialize()
	// The call's stream stays open until the result, which needs the
	// client's answer: the call runs in the background, and the answer is
	// posted once the process has asked.
	done := make(chan reply, 1)
	go func() {
		done <- c.do(http.MethodPost, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sample","arguments":{"prompt":"q"}}}`)
	}()
	eventually(t, 10*time.Second, "the process to ask for sampling", func() bool {
		return procOut(t, tc, c.id) >= 2 // the initialize result, then the sampling request
	})
	// The server numbers its own requests from 1: its first is this one.
	answer := `{"jsonrpc":"2.0","id":1,"result":{"model":"m","role":"assistant","content":{"type":"text","text":"a"}}}`
	c.post(answer, http.StatusAccepted)
	var r reply
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the call was not answered within 20s")
	}
	if r.status != http.StatusOK || len(r.msgs) != 2 || r.msgs[0].Method != "sampling/createMessage" || toolText(t, r.msgs[1]) != "model m said: a" {
		t.Fatalf("call answered %d %s", r.status, r.body)
	}
}

// procOut is how many messages the session's process has written, from
// the admin API.
func procOut(t *testing.T, tc *testCaddy, session string) int64 {
	t.Helper()
	for _, p := range listProcesses(t, tc) {
		if p.Session == session {
			return p.MessagesOut
		}
	}
	return -1
}

type processInfo struct {
	Session     string `json:"session"`
	PID         int    `json:"pid"`
	Command     string `json:"command"`
	Started     string `json:"started"`
	MessagesIn  int64  `json:"messages_in"`
	MessagesOut int64  `json:"messages_out"`
	LastStderr  string `json:"last_stderr"`
	Mode        string `json:"mode"`
	Key         string `json:"key_fingerprint"`
}

func listProcesses(t *testing.T, tc *testCaddy) []processInfo {
	t.Helper()
	resp, err := rawHTTP.Get(tc.admin + "/mcp_stdio/processes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /mcp_stdio/processes: %s", resp.Status)
	}
	var body struct {
		Count     int           `json:"count"`
		Processes []processInfo `json:"processes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Count != len(body.Processes) {
		t.Fatalf("GET /mcp_stdio/processes: %v %+v", err, body)
	}
	return body.Processes
}

// TestStatusRules: 400 without a session id unless initialize, 404 for an
// unknown or ended session, 405 for other methods, 409 for a second GET
// stream, 204 for DELETE.
func TestStatusRules(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	c.post(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, http.StatusBadRequest)
	c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, http.StatusBadRequest)
	if r := c.do(http.MethodGet, ""); r.status != http.StatusBadRequest {
		t.Errorf("GET without a session: %d", r.status)
	}
	c.id = "no-such-session"
	c.post(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, http.StatusNotFound)
	if r := c.do(http.MethodDelete, ""); r.status != http.StatusNotFound {
		t.Errorf("DELETE of an unknown session: %d", r.status)
	}
	c.id = ""
	c.initialize()
	if r := c.do(http.MethodPut, "{}"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", r.status)
	}
	c.post(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, http.StatusOK)
	c.post(`not json`, http.StatusBadRequest)

	// A standalone stream, and a second one refused.
	req, _ := http.NewRequest(http.MethodGet, c.url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", c.id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET stream: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if r := c.do(http.MethodGet, ""); r.status != http.StatusConflict {
		t.Errorf("second GET stream: %d, want 409", r.status)
	}

	pid := listProcesses(t, tc)[0].PID
	if r := c.do(http.MethodDelete, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	c.post(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, http.StatusNotFound)
	eventually(t, 10*time.Second, "the process to be gone after DELETE", func() bool {
		return len(listProcesses(t, tc)) == 0 && !alive(pid)
	})
}

// TestIdentityAndOrigin: a session belongs to the identity that started
// it; a foreign Origin is refused before anything runs.
func TestIdentityAndOrigin(t *testing.T) {
	tc := startCaddy(t, site(`identity {http.request.header.X-User}`))
	alice := newRaw(t, tc)
	alice.header.Set("X-User", "alice")
	alice.initialize()

	mallory := newRaw(t, tc)
	mallory.header.Set("X-User", "mallory")
	mallory.id = alice.id
	mallory.post(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, http.StatusForbidden)
	if r := mallory.do(http.MethodDelete, ""); r.status != http.StatusForbidden {
		t.Errorf("DELETE by another identity: %d", r.status)
	}
	nobody := newRaw(t, tc)
	nobody.id = alice.id
	nobody.post(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, http.StatusForbidden)
	alice.post(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, http.StatusOK)

	evil := newRaw(t, tc)
	evil.header.Set("Origin", "http://evil.example")
	evil.post(initBody, http.StatusForbidden)
	if n := len(listProcesses(t, tc)); n != 1 {
		t.Errorf("%d processes after a refused initialize, want alice's only", n)
	}
	same := newRaw(t, tc)
	same.header.Set("Origin", tc.base)
	same.initialize()
}

func alive(pid int) bool {
	return pid > 0 && procExists(pid)
}

// TestMaxProcesses: beyond max_processes, initialize gets 503 with
// Retry-After and starts nothing; a slot freed by DELETE is usable again.
func TestMaxProcesses(t *testing.T) {
	tc := startCaddy(t, site(`max_processes 2`))
	a, b := newRaw(t, tc), newRaw(t, tc)
	a.initialize()
	b.initialize()
	c := newRaw(t, tc)
	r := c.post(initBody, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "max_processes") {
		t.Errorf("503 without Retry-After or reason: %v %s", r.header, r.body)
	}
	if r := a.do(http.MethodDelete, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", r.status)
	}
	eventually(t, 10*time.Second, "a slot to free up", func() bool { return len(listProcesses(t, tc)) == 1 })
	c.initialize()
}

// TestIdleTimeout: a session with no message for idle_timeout ends, and
// its process with it; a call in flight keeps it alive.
func TestIdleTimeout(t *testing.T) {
	tc := startCaddy(t, site(`idle_timeout 1s`))
	busy := newRaw(t, tc)
	busy.initialize()
	idle := newRaw(t, tc)
	idle.initialize()
	// A call that lasts longer than idle_timeout with no message.
	r := busy.callTool(1, "slow", `{"steps":1,"delay_ms":2500}`)
	if toolText(t, r.msgs[len(r.msgs)-1]) != "done after 1 steps" {
		t.Fatalf("slow call: %s", r.body)
	}
	idle.post(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, http.StatusNotFound)
	eventually(t, 5*time.Second, "the idle session's process to be gone", func() bool {
		return len(listProcesses(t, tc)) == 1
	})
}

// TestEnvAndDir: env (with a placeholder), env_from_header, dir, and
// inherit_env off.
func TestEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	tc := startCaddy(t, site(`env GREETING "hello {http.request.header.X-Tenant}"
		env_from_header X-Api-Token API_TOKEN
		dir `+dir))
	c := newRaw(t, tc)
	c.header.Set("X-Tenant", "acme")
	c.header.Set("X-Api-Token", "secret-1")
	c.initialize()
	for i, tc := range []struct{ tool, args, want string }{
		{"env", `{"name":"GREETING"}`, "hello acme"},
		{"env", `{"name":"API_TOKEN"}`, "secret-1"},
		{"env", `{"name":"` + strings.SplitN(marker, "=", 2)[0] + `"}`, strings.SplitN(marker, "=", 2)[1]}, // inherited
		{"cwd", `{}`, dir},
	} {
		if got := toolText(t, c.callTool(i+1, tc.tool, tc.args).msgs[0]); got != tc.want {
			t.Errorf("%s %s = %q, want %q", tc.tool, tc.args, got, tc.want)
		}
	}
}

func TestInheritEnvOff(t *testing.T) {
	// With nothing inherited the command is not found by name through
	// the process's PATH, but Caddy looks it up in its own.
	tc := startCaddy(t, site(`inherit_env off
		env ONLY this`))
	c := newRaw(t, tc)
	c.initialize()
	if got := toolText(t, c.callTool(1, "env", `{"name":"PATH"}`).msgs[0]); got != "" {
		t.Errorf("PATH inherited with inherit_env off: %q", got)
	}
	if got := toolText(t, c.callTool(2, "env", `{"name":"ONLY"}`).msgs[0]); got != "this" {
		t.Errorf("ONLY = %q", got)
	}
}

// TestWireProgressBeforeResultThroughSSE: through mcp_sse, a call's
// progress notifications reach the SSE stream before its result, in
// order (clients that drop a request's progress handler with its result,
// as the TypeScript SDK does, lose any that come after).
func TestWireProgressBeforeResultThroughSSE(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newSSE(t, tc)
	c.post(initBody)
	if m := c.next(); string(m.ID) != "0" || m.Result == nil {
		t.Fatalf("initialize answered %+v", m)
	}
	c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	for round := range 5 {
		id := 10 + round
		c.post(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"slow","arguments":{"steps":3,"delay_ms":5},"_meta":{"progressToken":%d}}}`, id, id))
		for i := 1; i <= 3; i++ {
			if m := c.next(); m.Method != "notifications/progress" {
				t.Fatalf("round %d: message %d is %s %s (id %s), want progress %d", round, i, m.Method, m.Params, m.ID, i)
			}
		}
		if m := c.next(); string(m.ID) != fmt.Sprint(id) {
			t.Fatalf("round %d: want the result, got %+v", round, m)
		}
	}
}

// TestProgressFollowsToken: two calls in flight at once on one session;
// each stream carries only the progress of its own token, then its own
// result.
func TestProgressFollowsToken(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	c.initialize()
	replies := make(chan reply, 2)
	for _, tok := range []string{"A", "B"} {
		go func() {
			replies <- c.do(http.MethodPost, `{"jsonrpc":"2.0","id":"call-`+tok+`","method":"tools/call","params":{"name":"slow","arguments":{"steps":4,"delay_ms":30},"_meta":{"progressToken":"`+tok+`"}}}`)
		}()
	}
	for range 2 {
		var r reply
		select {
		case r = <-replies:
		case <-time.After(20 * time.Second):
			t.Fatal("a call was not answered within 20s")
		}
		if r.status != http.StatusOK || len(r.msgs) == 0 {
			t.Fatalf("call answered %d %s", r.status, r.body)
		}
		last := r.msgs[len(r.msgs)-1]
		tok := strings.TrimSuffix(strings.TrimPrefix(string(last.ID), `"call-`), `"`)
		if len(r.msgs) != 5 {
			t.Errorf("call %s: %d messages, want 4 progress and the result: %s", tok, len(r.msgs), r.body)
		}
		for _, m := range r.msgs[:len(r.msgs)-1] {
			var p struct {
				ProgressToken string `json:"progressToken"`
			}
			if json.Unmarshal(m.Params, &p); m.Method != "notifications/progress" || p.ProgressToken != tok {
				t.Errorf("call %s carried %s %s", tok, m.Method, m.Params)
			}
		}
	}
}

// TestServerRequestOnStandaloneStream: with the session's GET stream open,
// the server's sampling request goes there, not on the call's stream.
func TestServerRequestOnStandaloneStream(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	c.initialize()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", c.id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET stream: %s", resp.Status)
	}
	onGet := make(chan rpcMessage, 10)
	go func() {
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if d, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
				var m rpcMessage
				if json.Unmarshal([]byte(d), &m) == nil {
					onGet <- m
				}
			}
		}
	}()
	done := make(chan reply, 1)
	go func() {
		done <- c.do(http.MethodPost, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sample","arguments":{"prompt":"q"}}}`)
	}()
	var m rpcMessage
	select {
	case m = <-onGet:
	case <-time.After(10 * time.Second):
		t.Fatal("no sampling request on the GET stream within 10s")
	}
	if m.Method != "sampling/createMessage" {
		t.Fatalf("GET stream carried %+v", m)
	}
	c.post(`{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":{"model":"m","role":"assistant","content":{"type":"text","text":"a"}}}`, http.StatusAccepted)
	select {
	case r := <-done:
		if len(r.msgs) != 1 || toolText(t, r.msgs[0]) != "model m said: a" {
			t.Errorf("call answered %s, want its result alone", r.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the call was not answered within 20s")
	}
}

// TestCancelEndsStream: a request the client cancels is no longer waited
// for: its stream ends without a response, and the session goes on.
func TestCancelEndsStream(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	c.initialize()
	done := make(chan reply, 1)
	go func() {
		done <- c.do(http.MethodPost, `{"jsonrpc":"2.0","id":"long","method":"tools/call","params":{"name":"slow","arguments":{"steps":1,"delay_ms":30000}}}`)
	}()
	eventually(t, 5*time.Second, "the call to reach the process", func() bool {
		ps := listProcesses(t, tc)
		return len(ps) == 1 && ps[0].MessagesIn >= 3
	})
	c.post(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"long","reason":"user"}}`, http.StatusAccepted)
	select {
	case r := <-done:
		if r.status != http.StatusOK || len(r.msgs) != 0 {
			t.Errorf("cancelled call answered %d %s, want an empty event stream", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled call's stream still open after 10s")
	}
	if got := toolText(t, c.callTool(2, "echo", `{"text":"after cancel"}`).msgs[0]); got != "after cancel" {
		t.Errorf("echo = %q", got)
	}
}

// TestBatch: a batch of requests is answered as one event stream with
// every response; a batch of notifications gets 202.
func TestBatch(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	c.initialize()
	r := c.post(`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"one"}}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"two"}}}]`, http.StatusOK)
	got := map[string]string{}
	for _, m := range r.msgs {
		got[string(m.ID)] = toolText(t, m)
	}
	if len(r.msgs) != 2 || got["1"] != "one" || got["2"] != "two" {
		t.Errorf("batch answered %s", r.body)
	}
	c.post(`[{"jsonrpc":"2.0","method":"notifications/roots/list_changed"},{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}]`, http.StatusAccepted)
}

// TestMaxProcessesPerClient: one client may hold only so many processes.
func TestMaxProcessesPerClient(t *testing.T) {
	tc := startCaddy(t, site(`max_processes_per_client 1`))
	a := newRaw(t, tc)
	a.initialize()
	r := newRaw(t, tc).post(initBody, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "max_processes_per_client") {
		t.Errorf("503 without Retry-After or reason: %v %s", r.header, r.body)
	}
}

// TestStderrLogged: the process's stderr lines reach Caddy's log with
// their session, rate-bounded (at most 20 a second, then a count).
func TestStderrLogged(t *testing.T) {
	tc := startCaddy(t, `mcp_stdio stdioserver -stderr-lines 100`)
	c := newRaw(t, tc)
	c.initialize()
	var lines int
	eventually(t, 5*time.Second, "stderr lines in the log", func() bool {
		lines = 0
		for _, l := range tc.logs("http.handlers.mcp_stdio") {
			if l["msg"] == "stderr" && strings.HasPrefix(fmt.Sprint(l["line"]), "stderr line ") {
				if l["session"] != c.id[:8]+"…" {
					t.Fatalf("stderr line with session %v, want %s…", l["session"], c.id[:8])
				}
				lines++
			}
		}
		return lines > 0
	})
	if lines > 25 {
		t.Errorf("%d of 100 stderr lines logged at once; want them bounded to about 20", lines)
	}
}
