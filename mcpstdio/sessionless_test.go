package mcpstdio_test

// 2026-07-28 clients (no session, no initialize; input through MRTR)
// through mcp_stdio to legacy stdio servers: the Go SDK's client at its
// default against the Go SDK's conformance everything-server and the npm
// server-everything.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const modernVersion = "2026-07-28"

// sessionlessSite fronts command with mcp_stdio (and mcp_sse, for the
// legacy clients of the same tests).
func sessionlessSite(command, settings string) string {
	return `mcp_sse {
		resume_window 1s
	}
	mcp_stdio ` + command + ` {
		stop_timeout 2s
		` + settings + `
	}`
}

// modernClient connects the Go SDK's client at its default revision over
// Streamable HTTP, with handlers for every kind of input.
func modernClient(t *testing.T, ctx context.Context, tc *testCaddy, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	if opts == nil {
		opts = &mcp.ClientOptions{}
	}
	cs := connectAt(t, ctx, &mcp.StreamableClientTransport{Endpoint: tc.base + "/mcp"}, opts, "")
	if got := cs.InitializeResult().ProtocolVersion; got != modernVersion {
		t.Fatalf("negotiated %q, want %q", got, modernVersion)
	}
	return cs
}

func answeringClient(who string) *mcp.ClientOptions {
	return &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"username": who + "-name"}}, nil
		},
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Model: "m", Role: "assistant", Content: &mcp.TextContent{Text: who + "-sampled"}}, nil
		},
		Capabilities: &mcp.ClientCapabilities{RootsV2: &mcp.RootCapabilities{}},
	}
}

func TestSessionlessGoSDKEverything(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("* "+goEverythingServer(t), ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var progress []float64
	opts := answeringClient("alice")
	opts.ProgressNotificationHandler = func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		progress = append(progress, req.Params.Progress)
		mu.Unlock()
	}
	cs := modernClient(t, ctx, tc, opts)
	if got := cs.InitializeResult().ServerInfo; got == nil || got.Name != "mcp-conformance-test-server" {
		t.Errorf("serverInfo %+v", got)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) < 10 {
		t.Fatalf("tools/list: %v %d", err, len(tools.Tools))
	}
	if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "test_simple_text"}); got == "" {
		t.Error("empty text")
	}
	p := &mcp.CallToolParams{Name: "test_tool_with_progress"}
	p.SetProgressToken("tok-1")
	call(t, ctx, cs, p)
	eventually(t, 5*time.Second, "progress notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(progress) >= 3
	})
	if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "test_elicitation", Arguments: map[string]any{"message": "who?"}}); !strings.Contains(got, "alice-name") {
		t.Errorf("test_elicitation = %q", got)
	}
	if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "test_sampling", Arguments: map[string]any{"prompt": "hi"}}); !strings.Contains(got, "alice-sampled") {
		t.Errorf("test_sampling = %q", got)
	}
}

// modernCall is a sessionless request as a 2026-07-28 client sends it:
// the body (its _meta carrying the revision, client info and
// capabilities) and the headers mirroring it.
type modernCall struct {
	id     any
	method string
	name   string // params.name, or params.uri of resources/read
	params map[string]any
	caps   map[string]any
	header http.Header // set over the mirrored headers
}

func (m modernCall) body() string {
	params := map[string]any{}
	for k, v := range m.params {
		params[k] = v
	}
	if m.name != "" {
		key := "name"
		if m.method == "resources/read" {
			key = "uri"
		}
		params[key] = m.name
	}
	caps := m.caps
	if caps == nil {
		caps = map[string]any{}
	}
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    modernVersion,
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "raw", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": caps,
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.id, "method": m.method, "params": params})
	return string(b)
}

// post sends m as user (X-User, the test's process_key) and returns the
// reply.
func postModern(t *testing.T, tc *testCaddy, user string, m modernCall) reply {
	t.Helper()
	c := newRaw(t, tc)
	c.header.Set("MCP-Protocol-Version", modernVersion)
	c.header.Set("Mcp-Method", m.method)
	if m.name != "" {
		c.header.Set("Mcp-Name", m.name)
	}
	if user != "" {
		c.header.Set("X-User", user)
	}
	for k, v := range m.header {
		c.header[k] = v
	}
	return c.do(http.MethodPost, m.body())
}

// inputRequired reads an InputRequiredResult: its requests and state.
func inputRequired(t *testing.T, r reply) (requests map[string]struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}, state string) {
	t.Helper()
	if r.status != http.StatusOK || len(r.msgs) == 0 {
		t.Fatalf("want an InputRequiredResult, got %d %s", r.status, r.body)
	}
	var res struct {
		ResultType    string `json:"resultType"`
		InputRequests map[string]struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		} `json:"inputRequests"`
		RequestState string `json:"requestState"`
	}
	last := r.msgs[len(r.msgs)-1]
	if err := json.Unmarshal(last.Result, &res); err != nil || res.ResultType != "input_required" || res.RequestState == "" {
		t.Fatalf("want an InputRequiredResult, got %s", r.body)
	}
	return res.InputRequests, res.RequestState
}

// wantError checks a refusal: its status and JSON-RPC code.
func wantError(t *testing.T, what string, r reply, status, code int) {
	t.Helper()
	if r.status != status || len(r.msgs) != 1 || r.msgs[0].Error == nil || r.msgs[0].Error.Code != code {
		t.Errorf("%s: got %d %s, want %d with error %d", what, r.status, r.body, status, code)
	}
}

// messagesIn is how many messages the process of key has taken on its
// stdin.
func messagesIn(t *testing.T, tc *testCaddy, key string) int64 {
	t.Helper()
	for _, p := range listProcesses(t, tc) {
		if p.Mode == "sessionless" && p.Key == keyFingerprint(key) {
			return p.MessagesIn
		}
	}
	t.Fatalf("no sessionless process of key %q", key)
	return 0
}

var elicitCaps = map[string]any{"elicitation": map[string]any{"form": map[string]any{}}}

// TestSessionlessRequestState: a retry's requestState is taken once, from
// its principal, until it expires, and only as the bridge sealed it;
// every refusal is a 400 and reaches no process.
func TestSessionlessRequestState(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("* "+goEverythingServer(t), `process_key {http.request.header.X-User}
		input_timeout 3s`))
	ask := func(user string) (string, string) {
		reqs, state := inputRequired(t, postModern(t, tc, user, modernCall{id: 1, method: "tools/call", name: "test_elicitation",
			params: map[string]any{"arguments": map[string]any{"message": "who?"}}, caps: elicitCaps}))
		if len(reqs) != 1 {
			t.Fatalf("input requests %v", reqs)
		}
		for k, r := range reqs {
			if r.Method != "elicitation/create" {
				t.Fatalf("input request %s is %s", k, r.Method)
			}
			return k, state
		}
		return "", ""
	}
	retry := func(user, key, state string, id any) reply {
		return postModern(t, tc, user, modernCall{id: id, method: "tools/call", name: "test_elicitation", caps: elicitCaps,
			params: map[string]any{"arguments": map[string]any{"message": "who?"}, "requestState": state,
				"inputResponses": map[string]any{key: map[string]any{"action": "accept", "content": map[string]any{"username": "alice-name"}}}}})
	}
	key, state := ask("alice")
	before := messagesIn(t, tc, "alice")

	forged := []byte(state)
	forged[len(forged)/2] ^= 1
	if forged[len(forged)/2] == '-' || forged[len(forged)/2] == '_' {
		forged[len(forged)/2] = 'A'
	}
	wantError(t, "forged state", retry("alice", key, string(forged), 2), http.StatusBadRequest, -32602)
	wantError(t, "made-up state", retry("alice", key, "bm90IGEgc3RhdGU", 2), http.StatusBadRequest, -32602)
	foreign := retry("mallory", key, state, 2)
	wantError(t, "another principal's state", foreign, http.StatusBadRequest, -32602)
	if !strings.Contains(string(foreign.body), "another principal") {
		t.Errorf("another principal's state: %s", foreign.body)
	}
	if got := messagesIn(t, tc, "alice"); got != before {
		t.Errorf("refused retries reached the process: %d messages in, %d before", got, before)
	}
	for _, p := range listProcesses(t, tc) {
		if p.Key == keyFingerprint("mallory") {
			t.Error("a refused retry started a process for its principal")
		}
	}

	r := retry("alice", key, state, 3)
	if r.status != http.StatusOK || len(r.msgs) == 0 || string(r.msgs[len(r.msgs)-1].ID) != "3" ||
		!strings.Contains(string(r.msgs[len(r.msgs)-1].Result), "alice-name") {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	before = messagesIn(t, tc, "alice")
	spent := retry("alice", key, state, 4)
	wantError(t, "spent state", spent, http.StatusBadRequest, -32602)
	if !strings.Contains(string(spent.body), "already used") {
		t.Errorf("spent state: %s", spent.body)
	}
	if got := messagesIn(t, tc, "alice"); got != before {
		t.Errorf("a spent state reached the process: %d messages in, %d before", got, before)
	}

	// No retry within input_timeout: the bridge answers the server, and
	// the state expires.
	key, state = ask("alice")
	eventually(t, 20*time.Second, "the bridge to answer the server after input_timeout", func() bool {
		for _, l := range tc.logs("http.handlers.mcp_stdio") {
			if strings.Contains(fmt.Sprint(l["msg"]), "no retry within input_timeout") {
				return true
			}
		}
		return false
	})
	eventually(t, 20*time.Second, "the state to expire", func() bool {
		r := retry("alice", key, state, 5)
		if r.status == http.StatusOK {
			t.Fatalf("a retry after input_timeout was taken: %s", r.body)
		}
		return strings.Contains(string(r.body), "expired")
	})
}

// TestSessionlessHeaderRules: the revision's checks of a sessionless
// request, each a 400 with its JSON-RPC code before any process sees it.
func TestSessionlessHeaderRules(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("* "+goEverythingServer(t), `process_key {http.request.header.X-User}`))
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	region := func(v any) map[string]any { return map[string]any{"arguments": map[string]any{"region": v}} }
	// A first request warms the process up (and lists its tools).
	if r := postModern(t, tc, "alice", modernCall{id: 1, method: "server/discover"}); r.status != http.StatusOK {
		t.Fatalf("discover: %d %s", r.status, r.body)
	}
	before := messagesIn(t, tc, "alice")
	for _, tt := range []struct {
		name string
		m    modernCall
	}{
		{"Mcp-Method differs", modernCall{method: "tools/call", name: "test_simple_text", header: hdr("Mcp-Method", "tools/list")}},
		{"Mcp-Name differs", modernCall{method: "tools/call", name: "test_simple_text", header: hdr("Mcp-Name", "test_error_handling")}},
		{"Mcp-Name missing", modernCall{method: "prompts/get", name: "test_simple_prompt", header: hdr("Mcp-Name", "")}},
		{"version header differs from _meta", modernCall{method: "tools/list", header: hdr("MCP-Protocol-Version", "2025-11-25", "Mcp-Session-Id", "")}},
		{"Mcp-Param missing", modernCall{method: "tools/call", name: "test_x_mcp_header", params: region("eu")}},
		{"Mcp-Param differs", modernCall{method: "tools/call", name: "test_x_mcp_header", params: region("eu"), header: hdr("Mcp-Param-Region", "us")}},
		{"Mcp-Param for an absent argument", modernCall{method: "tools/call", name: "test_x_mcp_header", params: map[string]any{"arguments": map[string]any{}}, header: hdr("Mcp-Param-Region", "us")}},
		// Given twice, the first value right: one behind may read the last.
		{"Mcp-Method twice", modernCall{method: "tools/call", name: "test_simple_text", header: http.Header{"Mcp-Method": {"tools/call", "tools/list"}}}},
		{"Mcp-Name twice", modernCall{method: "tools/call", name: "test_simple_text", header: http.Header{"Mcp-Name": {"test_simple_text", "test_error_handling"}}}},
		{"Mcp-Param twice", modernCall{method: "tools/call", name: "test_x_mcp_header", params: region("eu"), header: http.Header{"Mcp-Param-Region": {"eu", "us"}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.m.id = 7
			r := postModern(t, tc, "alice", tt.m)
			if tt.name == "version header differs from _meta" {
				// A legacy version without a session is no sessionless
				// request: the legacy rules answer it.
				if r.status != http.StatusBadRequest {
					t.Errorf("got %d %s", r.status, r.body)
				}
				return
			}
			wantError(t, tt.name, r, http.StatusBadRequest, -32020)
		})
	}
	if got := messagesIn(t, tc, "alice"); got != before {
		t.Errorf("refused requests reached the process: %d messages in, %d before", got, before)
	}
	ok := postModern(t, tc, "alice", modernCall{id: 8, method: "tools/call", name: "test_x_mcp_header", params: region("eu"), header: hdr("Mcp-Param-Region", "eu")})
	if ok.status != http.StatusOK || ok.msgs[len(ok.msgs)-1].Error != nil {
		t.Errorf("matching Mcp-Param: %d %s", ok.status, ok.body)
	}
	encoded := postModern(t, tc, "alice", modernCall{id: 9, method: "tools/call", name: "test_x_mcp_header", params: region(" é "), header: hdr("Mcp-Param-Region", "=?base64?IMOpIA==?=")})
	if encoded.status != http.StatusOK || encoded.msgs[len(encoded.msgs)-1].Error != nil {
		t.Errorf("base64 Mcp-Param: %d %s", encoded.status, encoded.body)
	}

	unsupported := postModern(t, tc, "alice", modernCall{id: 10, method: "tools/list", header: hdr("MCP-Protocol-Version", "2099-01-01")})
	wantError(t, "unsupported version", unsupported, http.StatusBadRequest, -32022)
	if len(unsupported.msgs) == 1 && unsupported.msgs[0].Error != nil {
		if s := fmt.Sprint(unsupported.msgs[0].Error.Data["supported"]); !strings.Contains(s, modernVersion) || !strings.Contains(s, "2025-11-25") {
			t.Errorf("supported versions: %s", s)
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		c := newRaw(t, tc)
		c.header.Set("MCP-Protocol-Version", modernVersion)
		if r := c.do(method, ""); r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s without a session: %d %s", method, r.status, r.body)
		}
	}
	batch := newRaw(t, tc)
	batch.header.Set("MCP-Protocol-Version", modernVersion)
	if r := batch.do(http.MethodPost, `[`+modernCall{id: 1, method: "tools/list"}.body()+`]`); r.status != http.StatusBadRequest {
		t.Errorf("a batch: %d %s", r.status, r.body)
	}
}

// asUser adds X-User to every request: the test's process_key.
type asUser struct {
	user string
	rt   http.RoundTripper
}

func (a asUser) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-User", a.user)
	return a.rt.RoundTrip(req)
}

// userClient is the Go SDK's client at its default revision, as user, with
// a root of its own and handlers answering with its name.
func userClient(t *testing.T, ctx context.Context, tc *testCaddy, user string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-" + user, Version: "1.0.0"}, answeringClient(user))
	client.AddRoots(&mcp.Root{URI: "file:///home/" + user, Name: user})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tc.base + "/mcp",
		HTTPClient: &http.Client{Transport: asUser{user, http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatalf("%s: connect: %v", user, err)
	}
	t.Cleanup(func() { cs.Close() })
	if got := cs.InitializeResult().ProtocolVersion; got != modernVersion {
		t.Fatalf("%s: negotiated %q", user, got)
	}
	return cs
}

// TestSessionlessManyClients: clients of several principals at once, each
// answering input for its own requests with its own answers, each on a
// process of its own, beside a legacy session on the same handler.
func TestSessionlessManyClients(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("* "+goEverythingServer(t), `process_key {http.request.header.X-User}
		max_processes_per_client off`))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	legacy, err := mcp.NewClient(&mcp.Implementation{Name: "legacy", Version: "1"}, answeringClient("legacy")).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tc.base + "/mcp"}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { legacy.Close() })
	if v := legacy.InitializeResult().ProtocolVersion; v == modernVersion {
		t.Fatalf("the legacy client negotiated %s", v)
	}
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	check := func(who, tool, got, want string) {
		if !strings.Contains(got, want) {
			errs <- fmt.Sprintf("%s: %s = %q, want %q in it", who, tool, got, want)
		}
	}
	run := func(who string, cs *mcp.ClientSession) {
		defer wg.Done()
		for i := 0; i < 3; i++ {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_elicitation", Arguments: map[string]any{"message": "who?"}})
			check(who, "test_elicitation", resultText(res, err), who+"-name")
			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_sampling", Arguments: map[string]any{"prompt": "hi"}})
			check(who, "test_sampling", resultText(res, err), who+"-sampled")
		}
	}
	sessions := map[string]*mcp.ClientSession{}
	for _, u := range users {
		sessions[u] = userClient(t, ctx, tc, u)
	}
	for _, u := range users {
		wg.Add(1)
		go run(u, sessions[u])
	}
	wg.Add(1)
	go run("legacy", legacy)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// Roots, asked of the client by the server, through MRTR.
	res, err := sessions["u1"].CallTool(ctx, &mcp.CallToolParams{Name: "test_input_required_result_list_roots"})
	if got := resultText(res, err); !strings.Contains(got, "file:///home/u1") {
		t.Errorf("roots: %q", got)
	}

	procs := listProcesses(t, tc)
	pids := map[int]string{}
	keys := map[string]bool{}
	legacyProcs := 0
	for _, p := range procs {
		switch p.Mode {
		case "sessionless":
			if keys[p.Key] {
				t.Errorf("two processes for key %q", p.Key)
			}
			keys[p.Key] = true
		case "legacy_session":
			legacyProcs++
		default:
			t.Errorf("process %d: mode %q", p.PID, p.Mode)
		}
		if other, dup := pids[p.PID]; dup {
			t.Errorf("pid %d serves %q and %q", p.PID, other, p.Key)
		}
		pids[p.PID] = p.Key
		if !procExists(p.PID) {
			t.Errorf("pid %d (%q) not in /proc", p.PID, p.Key)
		}
	}
	for _, u := range users {
		if !keys[keyFingerprint(u)] {
			t.Errorf("no process of its own for %s: %+v", u, procs)
		}
	}
	if legacyProcs != 1 {
		t.Errorf("%d legacy-session processes, want 1", legacyProcs)
	}
}

func resultText(res *mcp.CallToolResult, err error) string {
	switch {
	case err != nil:
		return "error: " + err.Error()
	case res.IsError || len(res.Content) == 0:
		b, _ := json.Marshal(res)
		return "error result: " + string(b)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); ok {
		return tc.Text
	}
	return ""
}

// stderrLogged reports whether a process wrote a line holding s to its
// stderr (mcp_stdio logs each).
func stderrLogged(tc *testCaddy, s string) bool {
	for _, l := range tc.logs("http.handlers.mcp_stdio") {
		if l["msg"] == "stderr" && strings.Contains(fmt.Sprint(l["line"]), s) {
			return true
		}
	}
	return false
}

func logged(tc *testCaddy, msg string) bool {
	for _, l := range tc.logs("http.handlers.mcp_stdio") {
		if strings.Contains(fmt.Sprint(l["msg"]), msg) {
			return true
		}
	}
	return false
}

// TestSessionlessCancelByClosing: a client that closes a sessionless
// request's stream cancels the request on the process.
func TestSessionlessCancelByClosing(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("stdioserver", ""))
	if r := postModern(t, tc, "", modernCall{id: 1, method: "server/discover"}); r.status != http.StatusOK {
		t.Fatalf("discover: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := modernCall{id: 2, method: "tools/call", name: "block"}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tc.base+"/mcp", strings.NewReader(m.body()))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", modernVersion)
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "block")
	done := make(chan error, 1)
	go func() {
		resp, err := rawHTTP.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	eventually(t, 10*time.Second, "the request to reach the process", func() bool { return stderrLogged(tc, "block: started") })
	if stderrLogged(tc, "block: cancelled") {
		t.Fatal("cancelled before the client went away")
	}
	cancel()
	<-done
	eventually(t, 10*time.Second, "the process to see the request cancelled", func() bool { return stderrLogged(tc, "block: cancelled") })
}

// TestSessionlessMissingCapability: the server's request for input is
// answered by the bridge with an error, and the client never asked, when
// the client did not declare the capability.
func TestSessionlessMissingCapability(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("* "+goEverythingServer(t), ""))
	rounds := inputRounds(t, tc)
	r := postModern(t, tc, "", modernCall{id: 1, method: "tools/call", name: "test_elicitation",
		params: map[string]any{"arguments": map[string]any{"message": "who?"}}, caps: map[string]any{"sampling": map[string]any{}}})
	if r.status != http.StatusOK || strings.Contains(string(r.body), "input_required") || !strings.Contains(string(r.body), `"isError":true`) {
		t.Errorf("elicitation from a client without the capability: %d %s", r.status, r.body)
	}
	if n := inputRounds(t, tc) - rounds; n != 0 {
		t.Errorf("%v input rounds, want none", n)
	}

}

// TestSessionlessAskOutsideRequest: a request of the process while no
// request of a client runs is logged and answered with an error.
func TestSessionlessAskOutsideRequest(t *testing.T) {
	tc2 := startCaddy(t, sessionlessSite("stdioserver", ""))
	r := postModern(t, tc2, "", modernCall{id: 2, method: "tools/call", name: "ask_later", caps: map[string]any{"roots": map[string]any{}}})
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "asked later") {
		t.Fatalf("ask_later: %d %s", r.status, r.body)
	}
	eventually(t, 10*time.Second, "the process's request outside any request to be answered with an error", func() bool {
		return stderrLogged(tc2, "ask_later: roots/list answered, error:") && !stderrLogged(tc2, "error: <nil>")
	})
	if !logged(tc2, "outside any request") {
		t.Error("the request outside any request was not logged")
	}
}

// inputRounds reads caddy_mcp_stdio_input_rounds_total.
func inputRounds(t *testing.T, tc *testCaddy) float64 {
	t.Helper()
	return metricValue(t, tc, "caddy_mcp_stdio_input_rounds_total")
}

// metricValue reads an unlabelled metric from the admin endpoint (0 when
// it is not there).
func metricValue(t *testing.T, tc *testCaddy, name string) float64 {
	t.Helper()
	resp, err := rawHTTP.Get(tc.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// TestSessionlessLogLevel: a request whose _meta sets a log level gets
// the process's log messages; one that sets none does not.
func TestSessionlessLogLevel(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("* "+goEverythingServer(t), ""))
	withLevel := modernCall{id: 1, method: "tools/call", name: "test_logging_tool"}
	body := strings.Replace(withLevel.body(), `"io.modelcontextprotocol/protocolVersion"`, `"io.modelcontextprotocol/logLevel":"debug","io.modelcontextprotocol/protocolVersion"`, 1)
	c := newRaw(t, tc)
	c.header.Set("MCP-Protocol-Version", modernVersion)
	c.header.Set("Mcp-Method", "tools/call")
	c.header.Set("Mcp-Name", "test_logging_tool")
	r := c.do(http.MethodPost, body)
	if !hasMethod(r, "notifications/message") {
		t.Errorf("a request that set a level got no log message: %s", r.body)
	}
	r = postModern(t, tc, "", modernCall{id: 2, method: "tools/call", name: "test_logging_tool"})
	if r.status != http.StatusOK || hasMethod(r, "notifications/message") {
		t.Errorf("a request that set no level: %d %s", r.status, r.body)
	}
}

func hasMethod(r reply, method string) bool {
	for _, m := range r.msgs {
		if m.Method == method {
			return true
		}
	}
	return false
}

// TestSessionlessListen: list changes and resource updates reach a
// client through subscriptions/listen, tagged with its subscription.
func TestSessionlessListen(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("* "+goEverythingServer(t), `process_key {http.request.header.X-User}`))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	changed := make(chan struct{}, 16)
	updated := make(chan string, 16)
	opts := answeringClient("alice")
	opts.ToolListChangedHandler = func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} }
	opts.ResourceUpdatedHandler = func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) { updated <- req.Params.URI }
	client := mcp.NewClient(&mcp.Implementation{Name: "listener", Version: "1"}, opts)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tc.base + "/mcp",
		HTTPClient: &http.Client{Transport: asUser{"alice", http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "test://watched-resource"}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	other := userClient(t, ctx, tc, "alice")
	call(t, ctx, other, &mcp.CallToolParams{Name: "test_trigger_tool_change"})
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("no tools/list_changed through subscriptions/listen")
	}
	select {
	case uri := <-updated:
		if uri != "test://watched-resource" {
			t.Errorf("update of %q", uri)
		}
	case <-ctx.Done():
		t.Fatal("no resources/updated through subscriptions/listen")
	}

	// On the wire: the acknowledgement first, then the change, each
	// tagged with the listen request's id.
	m := modernCall{id: 42, method: "subscriptions/listen", params: map[string]any{"notifications": map[string]any{"toolsListChanged": true}}}
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	req, _ := http.NewRequestWithContext(lctx, http.MethodPost, tc.base+"/mcp", strings.NewReader(m.body()))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", modernVersion)
	req.Header.Set("Mcp-Method", "subscriptions/listen")
	req.Header.Set("X-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan rpcMessage, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m rpcMessage
				_ = json.Unmarshal([]byte(d), &m)
				events <- m
			}
		}
		close(events)
	}()
	next := func(what string) rpcMessage {
		select {
		case m := <-events:
			return m
		case <-ctx.Done():
			t.Fatalf("no %s on the listen stream", what)
		}
		return rpcMessage{}
	}
	tagged := func(m rpcMessage) bool {
		return strings.Contains(string(m.Params), `"io.modelcontextprotocol/subscriptionId":42`)
	}
	if ack := next("acknowledgement"); ack.Method != "notifications/subscriptions/acknowledged" || !tagged(ack) ||
		!strings.Contains(string(ack.Params), `"toolsListChanged":true`) {
		t.Fatalf("first message: %s %s", ack.Method, ack.Params)
	}
	call(t, ctx, other, &mcp.CallToolParams{Name: "test_trigger_tool_change"})
	if m := next("tools/list_changed"); m.Method != "notifications/tools/list_changed" || !tagged(m) {
		t.Errorf("after a change: %s %s", m.Method, m.Params)
	}
}

// TestSessionlessNpmEverything: the reference server-everything (npm),
// a TypeScript stdio server of the legacy revisions, to the Go SDK's
// client at 2026-07-28: tools, progress, elicitation and sampling
// through MRTR.
func TestSessionlessNpmEverything(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("node "+npmEverythingServer(t)+" stdio", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var progress []float64
	opts := answeringClient("npm-user")
	opts.ElicitationHandler = func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "npm-user-name", "check": true}}, nil
	}
	opts.ProgressNotificationHandler = func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		progress = append(progress, req.Params.Progress)
		mu.Unlock()
	}
	rounds := inputRounds(t, tc)
	cs := modernClient(t, ctx, tc, opts)
	if got := cs.InitializeResult().ServerInfo; got == nil || got.Name != "mcp-servers/everything" {
		t.Errorf("serverInfo %+v", got)
	}
	if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "token-77"}}); !strings.Contains(got, "token-77") {
		t.Errorf("echo = %q", got)
	}
	p := &mcp.CallToolParams{Name: "trigger-long-running-operation", Arguments: map[string]any{"duration": 0.3, "steps": 3}}
	p.SetProgressToken("npm-progress")
	call(t, ctx, cs, p)
	eventually(t, 5*time.Second, "three progress notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(progress) == 3
	})
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "trigger-elicitation-request"})
	if got := allText(res, err); !strings.Contains(got, "npm-user-name") {
		t.Errorf("trigger-elicitation-request = %q", got)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "trigger-sampling-request", Arguments: map[string]any{"prompt": "hi"}})
	if got := allText(res, err); !strings.Contains(got, "npm-user-sampled") {
		t.Errorf("trigger-sampling-request = %q", got)
	}
	if n := inputRounds(t, tc) - rounds; n < 2 {
		t.Errorf("%v input rounds counted, want 2 at least", n)
	}
}

// allText joins every text of a tool result.
func allText(res *mcp.CallToolResult, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text + "\n")
		}
	}
	return b.String()
}

// TestSessionlessSameIDs: two requests of one principal with the same
// JSON-RPC id, at once, on one process: each gets its own answer, under
// its own id.
func TestSessionlessSameIDs(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("stdioserver", ""))
	slow := make(chan reply, 1)
	go func() {
		slow <- postModern(t, tc, "", modernCall{id: 1, method: "tools/call", name: "slow",
			params: map[string]any{"arguments": map[string]any{"steps": 3, "delay_ms": 300}}})
	}()
	eventually(t, 10*time.Second, "the slow call to reach the process", func() bool {
		for _, p := range listProcesses(t, tc) {
			if p.Mode == "sessionless" && p.MessagesIn >= 4 { // initialize, initialized, tools/list, the call
				return true
			}
		}
		return false
	})
	echo := postModern(t, tc, "", modernCall{id: 1, method: "tools/call", name: "echo", params: map[string]any{"arguments": map[string]any{"text": "second"}}})
	if echo.status != http.StatusOK || string(echo.msgs[len(echo.msgs)-1].ID) != "1" || !strings.Contains(string(echo.msgs[len(echo.msgs)-1].Result), "second") {
		t.Errorf("echo: %d %s", echo.status, echo.body)
	}
	var r reply
	select {
	case r = <-slow:
	case <-time.After(40 * time.Second): // beyond rawHTTP's timeout: the call failed
		t.Fatal("the slow call was never answered")
	}
	if r.status != http.StatusOK || string(r.msgs[len(r.msgs)-1].ID) != "1" || strings.Contains(string(r.body), "second") || r.msgs[len(r.msgs)-1].Result == nil {
		t.Errorf("slow: %d %s", r.status, r.body)
	}
}

// TestSessionlessPromptAndRounds: prompts/get takes input too, and a
// tool whose server asks once costs one round and one question.
func TestSessionlessPromptAndRounds(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("* "+goEverythingServer(t), ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := answeringClient("carol")
	asked := 0
	opts.ElicitationHandler = func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		asked++
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"context": "carol-context", "username": "carol-name"}}, nil
	}
	cs := modernClient(t, ctx, tc, opts)
	res, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "test_input_required_result_prompt"})
	if err != nil || len(res.Messages) == 0 || !strings.Contains(res.Messages[0].Content.(*mcp.TextContent).Text, "carol-context") {
		t.Fatalf("prompt: %+v %v", res, err)
	}
	rounds := inputRounds(t, tc)
	asked = 0
	if got := call(t, ctx, cs, &mcp.CallToolParams{Name: "test_elicitation", Arguments: map[string]any{"message": "one"}}); !strings.Contains(got, "carol-name") {
		t.Errorf("test_elicitation = %q", got)
	}
	if n := inputRounds(t, tc) - rounds; n != 1 || asked != 1 {
		t.Errorf("%v rounds, %d questions for one elicitation", n, asked)
	}
}

// TestSessionlessProcessLimitsAndIdle: a key's process counts in
// max_processes (a new key beyond it gets 503), and ends after
// idle_timeout; the admin API ends one on demand.
func TestSessionlessProcessLimitsAndIdle(t *testing.T) {
	tc := startCaddy(t, sessionlessSite("stdioserver", `process_key {http.request.header.X-User}
		max_processes 2
		idle_timeout 2s`))
	discover := func(user string) reply {
		return postModern(t, tc, user, modernCall{id: 1, method: "server/discover"})
	}
	for _, u := range []string{"a", "b"} {
		if r := discover(u); r.status != http.StatusOK || !strings.Contains(string(r.body), `"supportedVersions":["2026-07-28"`) {
			t.Fatalf("discover as %s: %d %s", u, r.status, r.body)
		}
	}
	if r := discover("c"); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("a third key beyond max_processes 2: %d %s", r.status, r.body)
	}
	if r := discover("a"); r.status != http.StatusOK {
		t.Errorf("a key whose process runs: %d %s", r.status, r.body)
	}
	var pidA int
	for _, p := range listProcesses(t, tc) {
		if p.Key == keyFingerprint("a") {
			pidA = p.PID
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, tc.admin+"/mcp_stdio/processes/"+processOf(t, tc, "b"), nil)
	if resp, err := rawHTTP.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin DELETE: %v %v", resp, err)
	}
	eventually(t, 20*time.Second, "the idle process to end", func() bool { return !procExists(pidA) && len(listProcesses(t, tc)) == 0 })
	if r := discover("c"); r.status != http.StatusOK {
		t.Errorf("a key once the others ended: %d %s", r.status, r.body)
	}
}

func processOf(t *testing.T, tc *testCaddy, key string) string {
	t.Helper()
	for _, p := range listProcesses(t, tc) {
		if p.Mode == "sessionless" && p.Key == keyFingerprint(key) {
			return p.Session
		}
	}
	t.Fatalf("no process of key %q", key)
	return ""
}
