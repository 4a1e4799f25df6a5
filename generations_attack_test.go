package mcpsse_test

// The sessionless path under clients that misbehave: a client that never
// answers, that keeps declining, that answers ids it was not asked or
// answers twice, that lacks a capability, that cancels mid-round; an
// upstream that dies mid-round; a session that ends mid-round.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/everything"
	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// initializeWith runs the handshake with the given capabilities.
func (c *rawClient) initializeWith(capabilities string) {
	c.t.Helper()
	c.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":` + capabilities + `,"clientInfo":{"name":"raw","version":"1"}}}`)
	if m := c.message(10 * time.Second); string(m.ID) != "0" || m.Result == nil {
		c.t.Fatalf("initialize answered %+v", m)
	}
	c.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// nextRequest is the next server-to-client request on the stream.
func (c *rawClient) nextRequest(within time.Duration) rpcMessage {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := c.message(time.Until(deadline))
		if m.Method != "" && m.ID != nil {
			return m
		}
	}
}

// answerTo is a message answering the next response (not a request or
// notification) on the stream.
func (c *rawClient) response(within time.Duration) rpcMessage {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := c.message(time.Until(deadline))
		if m.Method == "" {
			return m
		}
	}
}

// elicitationRound calls the elicitation tool under id, accepts its input
// request with the name Ada and checks the tool's greeting.
func (c *rawClient) elicitationRound(id int) {
	c.t.Helper()
	c.send(callTool(id, "test_input_required_result_elicitation"))
	req := c.nextRequest(10 * time.Second)
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"accept","content":{"name":"Ada"}}}`)
	if m := c.response(10 * time.Second); toolText(c.t, m) != "Hello, Ada!" {
		c.t.Fatalf("got %+v", m)
	}
}

const allCapabilities = `{"elicitation":{"form":{}},"sampling":{},"roots":{"listChanged":true}}`

func callTool(id int, tool string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, id, tool)
}

func sessionlessCaddy(t *testing.T, settings string) *testCaddy {
	t.Helper()
	return startCaddySite(t, everythingSite, settings, everythingServer(t, true))
}

func TestGenerationsInputAnswers(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "test_input_required_result_elicitation"))
	req := c.nextRequest(10 * time.Second)
	if req.Method != "elicitation/create" || !strings.HasPrefix(string(req.ID), `"mcp-sse-input-`) {
		t.Fatalf("input request %+v", req)
	}
	// Ids the bridge did not mint are dropped; so is a second answer.
	c.send(`{"jsonrpc":"2.0","id":"mcp-sse-input-000000000000-1","result":{"action":"accept","content":{"name":"Mallory"}}}`)
	c.send(`{"jsonrpc":"2.0","id":1,"result":{"action":"accept","content":{"name":"Mallory"}}}`)
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"accept","content":{"name":"Ada"}}}`)
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"accept","content":{"name":"Eve"}}}`)
	m := c.response(10 * time.Second)
	if string(m.ID) != "1" || toolText(t, m) != "Hello, Ada!" || strings.Contains(string(m.Result), "resultType") {
		t.Fatalf("answer %+v %s", m, m.Result)
	}
}

func TestGenerationsDecliningClient(t *testing.T) {
	tc := sessionlessCaddy(t, "max_input_rounds 3")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "test_input_required_result_elicitation"))
	for range 3 {
		req := c.nextRequest(10 * time.Second)
		c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"decline"}}`)
	}
	m := c.response(10 * time.Second)
	if string(m.ID) != "1" || m.Error == nil || m.Error.Data["kind"] != "input_rounds" {
		t.Fatalf("answer %+v", m)
	}
}

func TestGenerationsClientNeverAnswers(t *testing.T) {
	tc := sessionlessCaddy(t, "input_timeout 300ms")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "test_input_required_result_elicitation"))
	req := c.nextRequest(10 * time.Second)
	// The bridge gives up, tells the client so, and fails the call.
	var cancelled, answered bool
	for !cancelled || !answered {
		m := c.message(10 * time.Second)
		switch {
		case m.Method == "notifications/cancelled":
			cancelled = strings.Contains(string(m.Params), string(req.ID))
		case string(m.ID) == "1":
			if m.Error == nil || m.Error.Data["kind"] != "input_timeout" || !strings.Contains(m.Error.Message, "input_timeout") {
				t.Fatalf("answer %+v", m)
			}
			answered = true
		}
	}
	// A late answer finds nothing, and the session goes on.
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"accept","content":{"name":"Ada"}}}`)
	c.send(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	if m := c.response(10 * time.Second); string(m.ID) != "2" || string(m.Result) != "{}" {
		t.Fatalf("ping %+v", m)
	}
}

func TestGenerationsClientError(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "test_input_required_result_sampling"))
	req := c.nextRequest(10 * time.Second)
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"error":{"code":-1,"message":"user rejected sampling"}}`)
	m := c.response(10 * time.Second)
	if m.Error == nil || m.Error.Data["kind"] != "input_error" || !strings.Contains(m.Error.Message, "user rejected sampling") {
		t.Fatalf("answer %+v", m)
	}
}

// A client that did not declare elicitation is never asked for it.
func TestGenerationsMissingCapability(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	c := tc.openStream(t)
	c.initializeWith(`{"sampling":{}}`)
	c.send(callTool(1, "test_input_required_result_elicitation"))
	m := c.message(10 * time.Second)
	if string(m.ID) != "1" || m.Error == nil || m.Error.Code != -32021 || m.Error.Data["kind"] != "input_capability" {
		t.Fatalf("answer %+v", m)
	}
	// And the server sees what the client declared: no elicitation, no
	// roots, but sampling.
	c.send(callTool(2, "test_missing_capability"))
	if m := c.response(10 * time.Second); toolText(t, m) != "Client declared the sampling capability; tool executed." {
		t.Fatalf("answer %+v", m)
	}
	c.send(callTool(3, "test_input_required_result_capabilities"))
	req := c.nextRequest(10 * time.Second)
	if req.Method != "sampling/createMessage" {
		t.Fatalf("asked %+v", req)
	}
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"hi"}}}`)
	if m := c.response(10 * time.Second); toolText(t, m) != "Capability-aware input requests fulfilled" {
		t.Fatalf("answer %+v", m)
	}
}

func TestGenerationsCancelMidRound(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "test_input_required_result_elicitation"))
	req := c.nextRequest(10 * time.Second)
	c.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}}`)
	// The bridge withdraws its own request from the client...
	m := c.message(10 * time.Second)
	if m.Method != "notifications/cancelled" || !strings.Contains(string(m.Params), string(req.ID)) {
		t.Fatalf("got %+v, want the input request cancelled", m)
	}
	// ...and the cancelled call is never answered: the next answer on the
	// stream is the ping's.
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"accept","content":{"name":"Ada"}}}`)
	c.send(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	if m := c.response(10 * time.Second); string(m.ID) != "2" {
		t.Fatalf("got %+v, want the ping's answer", m)
	}
}

func TestGenerationsUpstreamDiesMidRound(t *testing.T) {
	addr := everythingServerProcess(t)
	tc := startCaddySite(t, everythingSite, "", addr.addr)
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "test_input_required_result_elicitation"))
	req := c.nextRequest(10 * time.Second)
	addr.kill()
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"accept","content":{"name":"Ada"}}}`)
	m := c.response(30 * time.Second)
	if string(m.ID) != "1" || m.Error == nil || m.Error.Data["kind"] != "unreachable" {
		t.Fatalf("answer %+v", m)
	}
}

// A session closed in the middle of a round ends its call: the input
// request's late answer is refused with the session, nothing is left
// awaiting.
func TestGenerationsSessionClosesMidRound(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "test_input_required_result_elicitation"))
	c.nextRequest(10 * time.Second)
	running := func(fn string) bool {
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
		return strings.Contains(b.String(), "dispatch.(*Dispatcher)."+fn)
	}
	if !running("modernCall") || !running("modernListen") {
		t.Fatal("the round and the listen stream are not running: the check below would prove nothing")
	}
	id := strings.TrimPrefix(c.endpoint[strings.Index(c.endpoint, "session_id="):], "session_id=")
	if code, body := adminDo(t, tc, http.MethodDelete, "/mcp_sse/sessions/"+id, ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	c.waitEnd(10 * time.Second)
	if code, _ := c.post(`{"jsonrpc":"2.0","id":"x","result":{}}`); code != http.StatusNotFound {
		t.Errorf("POST after close: %d", code)
	}
	// Nothing of the session's sessionless path is left running: not the
	// call awaiting its round, not the listen stream.
	eventually(t, 10*time.Second, "the session's goroutines ended", func() bool {
		return !running("modernCall") && !running("modernListen")
	})
}

// Twenty sessions at once, each answering with its own name, each get
// their own greeting.
func TestGenerationsManySessions(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	const n = 20
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = tc.openStream(t)
		clients[i].initializeWith(allCapabilities)
	}
	for i, c := range clients {
		c.send(callTool(i, "test_input_required_result_multi_round"))
	}
	for i, c := range clients {
		req := c.nextRequest(20 * time.Second)
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"accept","content":{"name":"n%d"}}}`, req.ID, i))
	}
	for i, c := range clients {
		req := c.nextRequest(20 * time.Second)
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"accept","content":{"color":"c%d"}}}`, req.ID, i))
	}
	for i, c := range clients {
		m := c.response(20 * time.Second)
		if want := fmt.Sprintf("Multi-round complete: n%d likes c%d", i, i); string(m.ID) != fmt.Sprint(i) || toolText(t, m) != want {
			t.Errorf("session %d: %+v, want %q", i, m, want)
		}
	}
}

// A client whose stream drops in the middle of a round re-attaches and
// answers there; the call completes on the new stream, on both paths.
func TestGenerationsResumeMidRound(t *testing.T) {
	for _, up := range upstreamGenerations {
		t.Run(up.name, func(t *testing.T) {
			tc := startCaddySite(t, everythingSite, "", everythingServer(t, up.stateless))
			c1 := tc.openStream(t)
			c1.initializeWith(allCapabilities)
			c1.send(callTool(1, "test_input_required_result_elicitation"))
			var ev sse.Event
			var req rpcMessage
			for req.Method == "" {
				ev = c1.messageEvent(10 * time.Second)
				if err := json.Unmarshal(ev.Data, &req); err != nil {
					t.Fatal(err)
				}
				if req.ID == nil {
					req = rpcMessage{} // a notification
				}
			}
			if req.Method != "elicitation/create" {
				t.Fatalf("asked %+v", req)
			}
			c1.close()
			waitDetached(t, tc, 1)
			c2 := tc.openStreamWith(t, http.Header{"Last-Event-Id": {ev.ID}})
			if c2.endpoint != c1.endpoint {
				t.Fatalf("re-attached to %s, want %s", c2.endpoint, c1.endpoint)
			}
			c2.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"accept","content":{"name":"Ada"}}}`)
			if m := c2.response(20 * time.Second); string(m.ID) != "1" || toolText(t, m) != "Hello, Ada!" {
				t.Fatalf("answer %+v", m)
			}
		})
	}
}

// The answers of one round are bounded in bytes (max_message_size), not
// only each answer by the POST that carries it.
func TestGenerationsAnswersBounded(t *testing.T) {
	tc := sessionlessCaddy(t, "max_message_size 4KiB")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "test_input_required_result_multiple_inputs"))
	filler := strings.Repeat("x", 1800)
	for range 3 {
		req := c.nextRequest(10 * time.Second)
		var result string
		switch req.Method {
		case "elicitation/create":
			result = `{"action":"accept","content":{"name":"` + filler + `"}}`
		case "sampling/createMessage":
			result = `{"role":"assistant","model":"m","content":{"type":"text","text":"` + filler + `"}}`
		case "roots/list":
			result = `{"roots":[{"uri":"file:///` + filler + `"}]}`
		}
		c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":` + result + `}`)
	}
	m := c.response(10 * time.Second)
	if string(m.ID) != "1" || m.Error == nil || m.Error.Data["kind"] != "input_too_large" {
		t.Fatalf("answer %+v", m)
	}
}

// The verdict is remembered per route, and forgotten when the route's
// server turns out to speak the legacy revision after all: the next
// session probes again and takes the legacy path.
func TestGenerationsReprobe(t *testing.T) {
	first := everythingServerProcess(t)
	tc := startCaddySite(t, everythingSite, "", first.addr)
	c1 := tc.openStream(t)
	c1.initializeWith(allCapabilities)
	first.kill()
	// A stateful server takes the same address.
	everythingBin, err := everything.Build()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(everythingBin, "-http", first.addr, "-stateless=false")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, 30*time.Second, "the stateful server listens", func() bool {
		conn, err := net.Dial("tcp", first.addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	// A session that initializes now trusts the remembered verdict...
	c2 := tc.openStream(t)
	c2.initializeWith(allCapabilities)
	c2.send(callTool(1, "test_simple_text"))
	if m := c2.response(10 * time.Second); m.Error == nil || m.Error.Code != -32022 {
		t.Fatalf("got %+v, want the stateful server's -32022", m)
	}
	// ...which that refusal made the bridge forget: the next one probes.
	c3 := tc.openStream(t)
	c3.initializeWith(allCapabilities)
	c3.elicitationRound(1)
	code, body := adminDo(t, tc, "GET", "/mcp_sse/sessions", "")
	if code != http.StatusOK || strings.Count(body, `"upstream_protocol":"2026-07-28"`) != 2 || strings.Count(body, `"upstream_protocol":"legacy"`) != 1 {
		t.Errorf("admin: %s", body)
	}
}

// upstream_protocol legacy never probes: the session takes the legacy
// path even in front of a sessionless server.
func TestGenerationsLegacySetting(t *testing.T) {
	tc := sessionlessCaddy(t, "upstream_protocol legacy")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "test_simple_text"))
	if m := c.response(10 * time.Second); toolText(t, m) != "This is a simple text response for testing." {
		t.Fatalf("got %+v", m)
	}
	if _, body := adminDo(t, tc, "GET", "/mcp_sse/sessions", ""); !strings.Contains(body, `"upstream_protocol":"legacy"`) {
		t.Errorf("admin: %s", body)
	}
	if len(tc.logs("probed the upstream's protocol generation")) != 0 {
		t.Error("probed with upstream_protocol legacy")
	}
}

// A client whose initialize the upstream refuses (a clientInfo whose name
// is not a string draws a 400 from the Go SDK) must not make the route's
// remembered verdict legacy for every client after it.
func TestGenerationsProbeNotPoisonedByClient(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	bad := tc.openStream(t)
	bad.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":5}}}`)
	bad.response(10 * time.Second)
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.elicitationRound(1)
}

// logging/setLevel with a level the protocol does not name is refused, as
// the client's own revision has a server do, and not carried in the _meta
// of every later request.
func TestGenerationsSetLevelValidated(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"bogus\r\nX: y"}}`)
	if m := c.response(10 * time.Second); m.Error == nil || m.Error.Code != -32602 {
		t.Fatalf("setLevel bogus: got %+v, want -32602", m)
	}
	c.send(`{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"warning"}}`)
	if m := c.response(10 * time.Second); m.Error != nil || string(m.ID) != "2" {
		t.Fatalf("setLevel warning: got %+v", m)
	}
}

// A client the upstream refuses for its credentials (401) must not make
// the route's remembered verdict legacy for the clients it accepts.
func TestGenerationsProbeNotPoisonedByRefusal(t *testing.T) {
	site := `route {
		mcp_sse {
			{settings}
		}
		@anon not header Authorization "Bearer ok"
		respond @anon 401
		reverse_proxy {upstream} {
			rewrite /
		}
	}`
	tc := startCaddySite(t, site, "", everythingServer(t, true))
	anon := tc.openStream(t)
	anon.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"anon","version":"1"}}}`)
	if m := anon.response(10 * time.Second); m.Error == nil {
		t.Fatalf("anonymous initialize: got %+v, want the upstream's refusal", m)
	}
	c := tc.openStreamWith(t, http.Header{"Authorization": {"Bearer ok"}})
	c.initializeWith(allCapabilities)
	c.elicitationRound(1)
}

// A call waiting on its client for input (up to input_timeout, minutes)
// lets go of its POST's body: its bytes stop counting towards
// max_pending_bytes, which is for what waits on the upstream, so clients
// that sit on input requests cannot starve everyone else's POSTs.
func TestGenerationsWaitingCallLetsGoOfBody(t *testing.T) {
	// A client may hold a quarter of max_pending_bytes (or one largest
	// message): 100,000 bytes.
	tc := sessionlessCaddy(t, "max_pending_bytes 400000\n\t\tmax_message_size 100000")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	pad := strings.Repeat(" ", 70_000) // JSON whitespace: the body's size, not its meaning
	c.send(`{"jsonrpc":"2.0",` + pad + `"id":1,"method":"tools/call","params":{"name":"test_input_required_result_elicitation","arguments":{}}}`)
	req := c.nextRequest(10 * time.Second)
	// The first body would leave this one no room if it were still held.
	c.send(`{"jsonrpc":"2.0",` + pad + `"id":2,"method":"ping"}`)
	if m := c.response(10 * time.Second); string(m.ID) != "2" || string(m.Result) != "{}" {
		t.Fatalf("ping %+v", m)
	}
	// The waiting call kept what it needs of its message.
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"accept","content":{"name":"Ada"}}}`)
	if m := c.response(10 * time.Second); string(m.ID) != "1" || toolText(t, m) != "Hello, Ada!" {
		t.Fatalf("answer %+v %s", m, m.Result)
	}
}
