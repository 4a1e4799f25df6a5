package mcpsse_test

// End-to-end behaviour through a real Caddy and a real upstream.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

func TestStreamHeadersAndFirstFrames(t *testing.T) {
	tc := startCaddy(t, "retry 7s")
	resp, err := testClient.Get(tc.base + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	head := string(buf[:n])
	// The opening frame's id (resume token, then 0) is what a client
	// that reconnects sends back as Last-Event-ID; a keepalive comment
	// follows, which no parser reads as an event.
	opening := regexp.MustCompile(`^id: [A-Za-z0-9_-]{22}\.0\nevent: endpoint\ndata: message\?session_id=[0-9a-f-]{36}\nretry: 7000\n\n: keepalive\n\n$`)
	if !opening.MatchString(head) {
		t.Errorf("stream starts %q, want an id, a relative endpoint with retry 7000, and a keepalive comment", head)
	}
	// The stream's connection reached the handler and got the kernel's
	// unacknowledged-data timeout (Linux), so a vanished peer is found.
	if runtime.GOOS == "linux" {
		eventually(t, 5*time.Second, "TCP_USER_TIMEOUT bound", func() bool {
			return len(tc.logs("stream connection fails after unacknowledged data")) == 1
		})
	}
}

// TestProgressBeforeResult reads the wire: every progress notification of
// a call must arrive, in order, before its result; both as the upstream
// streams them while the call runs and when they come in one write with
// the result, where any reordering in the bridge would show.
func TestProgressBeforeResult(t *testing.T) {
	tests := []struct {
		name     string
		upstream func(http.Handler) http.Handler
		steps    int
	}{
		{"streamed", func(h http.Handler) http.Handler { return h }, 8},
		{"in one write with the result", coalescePOSTs, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := httptest.NewServer(tt.upstream(demo.Handler()))
			t.Cleanup(up.Close)
			tc := startCaddyWithUpstream(t, "", strings.TrimPrefix(up.URL, "http://"))
			c := tc.openStream(t)
			c.initialize()
			steps := tt.steps
			c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":"slow-1","method":"tools/call","params":{"name":"slow","arguments":{"steps":%d,"delay_ms":1},"_meta":{"progressToken":"tok"}}}`, steps))
			for want := 1; want <= steps; want++ {
				m := c.message(10 * time.Second)
				var p struct {
					ProgressToken string  `json:"progressToken"`
					Progress      float64 `json:"progress"`
				}
				if m.Method != "notifications/progress" || json.Unmarshal(m.Params, &p) != nil || p.ProgressToken != "tok" || p.Progress != float64(want) {
					t.Fatalf("message %d = %+v %s, want progress %d", want, m, m.Params, want)
				}
			}
			if m := c.message(10 * time.Second); string(m.ID) != `"slow-1"` || toolText(t, m) != fmt.Sprintf("done after %d steps", steps) {
				t.Fatalf("after progress: %+v", m)
			}
		})
	}
}

// coalescePOSTs passes each POST's whole reply on in one write, once h
// has returned.
func coalescePOSTs(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

// TestProgressWithGoSDK checks the same through a real client. The Go SDK
// runs notification handlers on a goroutine of their own, after the
// response may already have been returned, so what arrived first is read
// off the bytes the client read.
func TestProgressWithGoSDK(t *testing.T) {
	tc := startCaddy(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var seen []float64
	wire := &wireRecorder{rt: http.DefaultTransport}
	client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-progress", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			seen = append(seen, req.Params.Progress)
			mu.Unlock()
		},
	})
	cs, err := client.Connect(ctx, sseTransport(tc.base+"/sse", &http.Client{Transport: wire}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"steps": 3, "delay_ms": 20}}
	params.SetProgressToken("p")
	if _, err := cs.CallTool(ctx, params); err != nil {
		t.Fatal(err)
	}
	// The client has read the result, so everything before it too.
	var order []string
	for _, m := range wire.messages() {
		var p struct {
			Progress float64 `json:"progress"`
		}
		switch {
		case m.Method == "notifications/progress" && json.Unmarshal(m.Params, &p) == nil:
			order = append(order, fmt.Sprint("progress ", p.Progress))
		case m.Method == "" && m.Result != nil && strings.Contains(string(m.Result), "done after 3 steps"):
			order = append(order, "result")
		}
	}
	if want := []string{"progress 1", "progress 2", "progress 3", "result"}; !slices.Equal(order, want) {
		t.Fatalf("the client read %q, want %q", order, want)
	}
	eventually(t, 5*time.Second, "three progress notifications handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []float64{1, 2, 3}) {
		t.Errorf("the progress handler saw %v, want [1 2 3]", seen)
	}
}

// TestSampling: the upstream asks the client for a sampling completion in
// the middle of a call; the client's answer goes back through the bridge
// and the tool's result carries it.
func TestSampling(t *testing.T) {
	tc := startCaddy(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := connectGoSDK(t, ctx, tc, &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			prompt := req.Params.Messages[0].Content.(*mcp.TextContent).Text
			return &mcp.CreateMessageResult{Model: "test-model", Role: "assistant",
				Content: &mcp.TextContent{Text: "echo of " + prompt}}, nil
		},
	})
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "sample", Arguments: map[string]any{"prompt": "hello?"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; got != "model test-model said: echo of hello?" {
		t.Errorf("sample = %q", got)
	}
}

// TestSlowCallDoesNotHoldBackNext: a ping posted after a long call is
// answered while the call still runs.
func TestSlowCallDoesNotHoldBackNext(t *testing.T) {
	tc := startCaddy(t, "")
	c := tc.openStream(t)
	c.initialize()
	c.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"steps":1,"delay_ms":3000}}}`)
	c.send(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	if m := c.message(10 * time.Second); string(m.ID) != "2" {
		t.Fatalf("first answer is for id %s, want the ping (2) before the slow call", m.ID)
	}
	if m := c.message(10 * time.Second); string(m.ID) != "1" {
		t.Fatalf("second answer is for id %s, want the slow call (1)", m.ID)
	}
}

// serialSite fronts an upstream reached over one connection at a time, so
// that the order the upstream receives messages in is the order the bridge
// sent them in. Over several connections the upstream's handlers run
// concurrently and may read two messages in either order, whatever order
// they were sent in. The standalone stream would hold the one connection
// for ever: its settings turn it off.
const (
	serialSite = `mcp_sse {
		{settings}
	}
	reverse_proxy {upstream} {
		rewrite /mcp
		transport http {
			max_conns_per_host 1
		}
	}`
	serialSettings = "upstream_listen off"
)

// TestOrderPreserved: messages reach the upstream in the order they were
// posted, whether one POST each or in one batch (whose messages the
// bridge dispatches at once: without turns they would race).
func TestOrderPreserved(t *testing.T) {
	const n = 30
	call := func(i int) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"m%d"}}}`, i, i)
	}
	tests := []struct {
		name string
		post func(c *rawClient)
	}{
		{"one POST each", func(c *rawClient) {
			for i := range n {
				c.send(call(i))
			}
		}},
		{"one batch", func(c *rawClient) {
			msgs := make([]string, n)
			for i := range n {
				msgs[i] = call(i)
			}
			c.send("[" + strings.Join(msgs, ",") + "]")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := recordingUpstream(t, nil)
			tc := startCaddySite(t, serialSite, serialSettings, rec.addr)
			c := tc.openStream(t)
			c.initialize()
			tt.post(c)
			got := map[string]string{}
			for range n {
				m := c.message(10 * time.Second)
				got[string(m.ID)] = toolText(t, m)
			}
			for i := range n {
				if got[fmt.Sprint(i)] != fmt.Sprintf("m%d", i) {
					t.Errorf("id %d answered %q", i, got[fmt.Sprint(i)])
				}
			}
			var order []string
			for _, p := range rec.received("tools/call") {
				order = append(order, p.ID)
			}
			want := make([]string, n)
			for i := range n {
				want[i] = fmt.Sprint(i)
			}
			if !slices.Equal(order, want) {
				t.Errorf("the upstream received the calls in the order %v, want 0 to %d", order, n-1)
			}
		})
	}
}

// TestBatchDispatchedWhole: every message of a POSTed batch reaches the
// upstream, in order, and every request in it is answered.
func TestBatchDispatchedWhole(t *testing.T) {
	rec := recordingUpstream(t, nil)
	tc := startCaddySite(t, serialSite, serialSettings, rec.addr)
	c := tc.openStream(t)
	c.initialize()
	c.send(`[
		{"jsonrpc":"2.0","id":"b1","method":"tools/call","params":{"name":"echo","arguments":{"text":"one"}}},
		{"jsonrpc":"2.0","method":"notifications/roots/list_changed"},
		{"jsonrpc":"2.0","id":"b2","method":"ping"},
		{"jsonrpc":"2.0","id":"b3","method":"tools/call","params":{"name":"echo","arguments":{"text":"three"}}}
	]`)
	answers := map[string]rpcMessage{}
	for range 3 {
		m := c.message(10 * time.Second)
		if m.Error != nil {
			t.Fatalf("batch member %s failed: %+v", m.ID, *m.Error)
		}
		answers[string(m.ID)] = m
	}
	if m, ok := answers[`"b1"`]; !ok || toolText(t, m) != "one" {
		t.Errorf("b1 answered %+v", answers[`"b1"`])
	}
	if m, ok := answers[`"b2"`]; !ok || m.Result == nil {
		t.Errorf("b2 (ping) answered %+v", answers[`"b2"`])
	}
	if m, ok := answers[`"b3"`]; !ok || toolText(t, m) != "three" {
		t.Errorf("b3 answered %+v", answers[`"b3"`])
	}
	var got []string
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var posts []upstreamPOST
	for _, p := range rec.posts {
		if p.Method != "server/discover" { // the bridge's probe of the upstream's generation
			posts = append(posts, p)
		}
	}
	for _, p := range posts[2:] { // after initialize and initialized
		got = append(got, p.Method+" "+p.ID)
	}
	want := []string{`tools/call "b1"`, "notifications/roots/list_changed ", `ping "b2"`, `tools/call "b3"`}
	if !slices.Equal(got, want) {
		t.Errorf("the upstream received %q, want %q", got, want)
	}
}

// TestForwardedHeaders: Authorization, and the headers forward_headers
// names, reach the upstream with each message; other client headers do
// not.
func TestForwardedHeaders(t *testing.T) {
	rec := recordingUpstream(t, nil)
	tc := startCaddyWithUpstream(t, "forward_headers X-Tenant X-Trace-Id", rec.addr)
	c := tc.openStream(t)
	c.initialize()
	h := http.Header{}
	h.Set("Authorization", "Bearer t0ken")
	h.Set("X-Tenant", "acme")
	h.Add("X-Trace-Id", "a")
	h.Add("X-Trace-Id", "b")
	h.Set("X-Not-Forwarded", "secret")
	body := `{"jsonrpc":"2.0","id":"h","method":"tools/call","params":{"name":"echo","arguments":{"text":"with headers"}}}`
	if code, reply := postHeaders(t, http.DefaultClient, c.endpoint, body, h); code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, reply)
	}
	if m := c.message(10 * time.Second); toolText(t, m) != "with headers" {
		t.Fatalf("answer: %+v", m)
	}
	calls := rec.received("tools/call")
	if len(calls) != 1 {
		t.Fatalf("the upstream received %d calls, want 1", len(calls))
	}
	got := calls[0].Header
	for name, want := range map[string][]string{
		"Authorization":   {"Bearer t0ken"},
		"X-Tenant":        {"acme"},
		"X-Trace-Id":      {"a", "b"},
		"X-Not-Forwarded": nil,
	} {
		if !slices.Equal(got.Values(name), want) {
			t.Errorf("upstream saw %s = %q, want %q", name, got.Values(name), want)
		}
	}
}

// TestConcurrentSessions: 100 clients at once, each calling echo with a
// token of its own; each must get exactly its own answers back.
func TestConcurrentSessions(t *testing.T) {
	tc := startCaddy(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const sessions, calls = 100, 5
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for s := range sessions {
		wg.Go(func() {
			client := mcp.NewClient(&mcp.Implementation{Name: fmt.Sprintf("c%d", s), Version: "1"}, nil)
			cs, err := client.Connect(ctx, &mcp.SSEClientTransport{Endpoint: tc.base + "/sse"}, nil)
			if err != nil {
				errs <- fmt.Errorf("session %d connect: %w", s, err)
				return
			}
			defer cs.Close()
			for i := range calls {
				token := fmt.Sprintf("session-%d-call-%d", s, i)
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": token}})
				if err != nil {
					errs <- fmt.Errorf("session %d call %d: %w", s, i, err)
					return
				}
				if got := res.Content[0].(*mcp.TextContent).Text; got != token {
					errs <- fmt.Errorf("session %d call %d got %q: misrouted", s, i, got)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestBadInput(t *testing.T) {
	tc := startCaddy(t, "max_message_size 1KiB")
	c := tc.openStream(t)
	msgURL := tc.base + "/message"
	big := `{"jsonrpc":"2.0","method":"x","params":{"pad":"` + strings.Repeat("a", 2000) + `"}}`
	tests := []struct {
		name     string
		url      string
		body     string
		chunked  bool // no Content-Length: the limit must hold while reading
		status   int
		code     int
		contains string
	}{
		{"missing session_id", msgURL, `{}`, false, 400, -32600, "missing session_id"},
		{"malformed session_id", msgURL + "?session_id=a/b", `{}`, false, 400, -32600, "malformed session_id"},
		{"overlong session_id", msgURL + "?session_id=" + strings.Repeat("a", 129), `{}`, false, 400, -32600, "malformed session_id"},
		{"unknown session", msgURL + "?session_id=no-such-session", `{}`, false, 404, -32001, "session not found"},
		{"body too large", c.endpoint, big, false, 413, -32600, "max_message_size"},
		{"body too large, chunked", c.endpoint, big, true, 413, -32600, "max_message_size"},
		{"not JSON", c.endpoint, `{"jsonrpc":`, false, 400, -32700, "parse error"},
		{"empty body", c.endpoint, ``, false, 400, -32700, "parse error"},
		{"not JSON-RPC 2.0", c.endpoint, `{"jsonrpc":"1.0","id":1,"method":"ping"}`, false, 400, -32600, `"jsonrpc" must be "2.0"`},
		{"neither request nor response", c.endpoint, `{"jsonrpc":"2.0","id":1}`, false, 400, -32600, "neither a request"},
		{"bad batch", c.endpoint, `[{"jsonrpc":"2.0","method":"a"},"x"]`, false, 400, -32600, "batch item 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, tt.url, strings.NewReader(tt.body))
			if tt.chunked {
				req.ContentLength = -1
				req.Body = http.NoBody
				req.Body = readerCloser{strings.NewReader(tt.body)}
			}
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if body.Error.Code != tt.code || !strings.Contains(body.Error.Message, tt.contains) {
				t.Errorf("error = %+v, want code %d and %q", body.Error, tt.code, tt.contains)
			}
		})
	}
	// None of it may have reached the session's stream or closed it.
	c.initialize()
}

type readerCloser struct{ *strings.Reader }

func (readerCloser) Close() error { return nil }

// TestUpstreamDown: with nothing listening upstream, a request is answered
// on the stream with a JSON-RPC error carrying its id, not silence.
func TestUpstreamDown(t *testing.T) {
	tc := startCaddyWithUpstream(t, "", "127.0.0.1:"+freePort(t))
	c := tc.openStream(t)
	c.send(`{"jsonrpc":"2.0","id":"init-1","method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	m := c.message(10 * time.Second)
	if string(m.ID) != `"init-1"` || m.Error == nil {
		t.Fatalf("got %+v, want an error for id init-1", m)
	}
	if m.Error.Code != -32603 || !strings.Contains(m.Error.Message, "upstream unreachable (HTTP 502)") || m.Error.Data["kind"] != "unreachable" {
		t.Errorf("error = %+v", *m.Error)
	}
}

// TestUpstreamFailures: replies that are not JSON-RPC answers each give the
// client a JSON-RPC error with the request's id, and the session stays
// usable.
func TestUpstreamFailures(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		switch req.Method {
		case "html500":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(500)
			fmt.Fprint(w, "<html>oops</html>")
		case "notjson":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, "not json at all")
		case "cutstream":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",")
		case "otherid":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"jsonrpc":"2.0","id":"someone-else","result":{}}`)
		case "accepted":
			w.WriteHeader(http.StatusAccepted)
		case "hang":
			<-r.Context().Done()
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"ok":true}}`, req.ID)
		}
	}))
	t.Cleanup(up.Close)
	tc := startCaddyWithUpstream(t, "upstream_timeout 1s", strings.TrimPrefix(up.URL, "http://"))
	c := tc.openStream(t)
	tests := []struct{ method, kind, contains string }{
		{"html500", "http_status", "HTTP 500"},
		{"notjson", "bad_reply", "not JSON"},
		{"cutstream", "incomplete", "cut off"},
		{"otherid", "bad_reply", "not this request"},
		{"accepted", "no_response", "HTTP 202"},
		{"hang", "timeout", "within 1s"},
	}
	for i, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q}`, i, tt.method))
			m := c.message(10 * time.Second)
			if string(m.ID) != fmt.Sprint(i) || m.Error == nil {
				t.Fatalf("got %+v, want an error for id %d", m, i)
			}
			if m.Error.Data["kind"] != tt.kind || !strings.Contains(m.Error.Message, tt.contains) {
				t.Errorf("error = %+v, want kind %s and %q", *m.Error, tt.kind, tt.contains)
			}
			// The session still works.
			c.send(`{"jsonrpc":"2.0","id":"after","method":"fine"}`)
			if m := c.message(10 * time.Second); string(m.ID) != `"after"` || m.Error != nil {
				t.Fatalf("next call got %+v", m)
			}
		})
	}
}

// TestUpstreamReplySizeLimit: max_message_size bounds each message of the
// upstream's reply, as an application/json body and as one event of an
// event stream; a larger one is an error for the request, not relayed, and
// one within the limit passes.
func TestUpstreamReplySizeLimit(t *testing.T) {
	const limit = 4096
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Size int `json:"size"`
			} `json:"params"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		if req.Method != "json" && req.Method != "sse" {
			// The bridge's own requests (its server/discover probe, its
			// initialize): a server that knows none of them.
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		// A response of exactly Params.Size bytes.
		msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"pad":""}}`, req.ID)
		msg = strings.Replace(msg, `""`, `"`+strings.Repeat("x", req.Params.Size-len(msg))+`"`, 1)
		switch req.Method {
		case "json":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, msg)
		case "sse":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: message\ndata: %s\n\n", msg)
		}
	}))
	t.Cleanup(up.Close)
	tc := startCaddyWithUpstream(t, fmt.Sprintf("max_message_size %d", limit), strings.TrimPrefix(up.URL, "http://"))
	c := tc.openStream(t)
	tests := []struct {
		method string
		size   int
		tooBig string // what the error says, if it is one
	}{
		{"json", limit - 100, ""},
		{"json", 2 * limit, "upstream reply exceeds 4096 bytes"},
		{"sse", limit - 100, ""},
		{"sse", 2 * limit, "event exceeds size limit"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s %d bytes", tt.method, tt.size), func(t *testing.T) {
			c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":{"size":%d}}`, i, tt.method, tt.size))
			m := c.message(10 * time.Second)
			if string(m.ID) != fmt.Sprint(i) {
				t.Fatalf("got %+v, want the answer to id %d", m, i)
			}
			switch {
			case tt.tooBig != "" && (m.Error == nil || m.Error.Data["kind"] != "bad_reply" || !strings.Contains(m.Error.Message, tt.tooBig)):
				t.Fatalf("a %d-byte reply over a limit of %d: got %+v %.100s, want a bad_reply error saying %q", tt.size, limit, m.Error, m.Result, tt.tooBig)
			case tt.tooBig == "" && (m.Error != nil || len(m.Result) < tt.size-100):
				t.Fatalf("a %d-byte reply within a limit of %d: got %+v, %d bytes of result", tt.size, limit, m.Error, len(m.Result))
			}
		})
	}
}

// TestReloadKeepsStreams loads a new config through the admin API while a
// stream is open; the stream lives on and POSTs handled by the new config
// reach it.
func TestReloadKeepsStreams(t *testing.T) {
	tc := startCaddy(t, "keepalive 30s")
	c := tc.openStream(t)
	c.initialize()
	// A POST right after a reload can be cut by the listener handover
	// before any server read it (see handoverClient). Any client faces
	// this on any reload; what must hold is that the stream survives and
	// each call is answered once.
	var retries atomic.Int64
	client := handoverClient(&retries)
	post := func(body string) {
		t.Helper()
		if code, reply := postVia(t, client, c.endpoint, body); code != http.StatusAccepted {
			t.Fatalf("POST %s: %d %s", body, code, reply)
		}
	}

	for i, settings := range []string{"keepalive 20s", "keepalive 25s\n\t\tqueue_size 512"} {
		tc.reload(settings)
		token := fmt.Sprintf("after reload %d", i)
		post(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":%q}}}`, 10+i, token))
		if m := c.message(10 * time.Second); toolText(t, m) != token {
			t.Fatalf("after reload %d got %+v", i, m)
		}
	}
	// A retried POST that had reached the bridge after all would show up
	// here as a second answer.
	post(`{"jsonrpc":"2.0","id":"last","method":"ping"}`)
	if m := c.message(10 * time.Second); string(m.ID) != `"last"` {
		t.Fatalf("after the reloads got %+v, want the answer to ping", m)
	}
	if n := retries.Load(); n > 0 {
		t.Logf("%d POSTs reset by Caddy's listener handover and retried", n)
	}
}

// TestSendTimeoutCutsNonReader: a client that stops reading is cut by
// send_timeout and its session closed, with the reason logged.
func TestSendTimeoutCutsNonReader(t *testing.T) {
	tc := startCaddy(t, "send_timeout 300ms\n\t\tqueue_size 100000\n\t\tresume_window off")
	c := tc.openStream(t)
	c.initialize()
	// Stop reading: pause the reader by not draining events, and fill the
	// socket with large messages until the session is gone.
	c.cancelReads()
	big := strings.Repeat("x", 256<<10)
	closed := false
	for i := 0; i < 400 && !closed; i++ {
		code, reply := c.post(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":%q}}}`, i, big))
		if code != http.StatusAccepted && code != http.StatusNotFound {
			t.Fatalf("POST %d: %d %s", i, code, reply)
		}
		closed = code == http.StatusNotFound
	}
	if !closed {
		t.Fatal("session still open after filling the socket of a client that does not read")
	}
	if reason := tc.closedReason(c, 5*time.Second); reason != "send_timeout" {
		t.Fatalf("the non-reader's session closed as %q, want send_timeout", reason)
	}
}

// TestUpstreamSessionDeleted: when a stream ends, the upstream session it
// created gets a DELETE.
func TestUpstreamSessionDeleted(t *testing.T) {
	var deletes atomic.Int32
	inner := demo.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && r.Header.Get("Mcp-Session-Id") != "" {
			deletes.Add(1)
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	// The client leaves and never comes back: once the resume window has
	// passed, the session ends as resume_expired and the upstream session
	// gets its DELETE.
	tc := startCaddyWithUpstream(t, "resume_window 300ms", strings.TrimPrefix(up.URL, "http://"))
	c := tc.openStream(t)
	c.initialize()
	c.close()
	eventually(t, 10*time.Second, "upstream DELETE", func() bool { return deletes.Load() == 1 })
	if closed := tc.logs("session closed"); len(closed) != 1 || closed[0]["reason"] != "resume_expired" {
		t.Errorf("close log lines %v, want one with reason resume_expired", closed)
	}
	// The session is gone: a POST now finds nothing.
	eventually(t, 5*time.Second, "session removed", func() bool {
		code, _ := c.post(`{"jsonrpc":"2.0","method":"x"}`)
		return code == http.StatusNotFound
	})
}

// TestCleanupTimeoutBoundsTeardown: an upstream whose DELETE never
// answers holds a closed session's teardown no longer than
// cleanup_timeout: the DELETE is cut, the session is gone, and the
// client's slot, given back when the teardown ends, takes a new stream.
func TestCleanupTimeoutBoundsTeardown(t *testing.T) {
	deleted := make(chan struct{}, 1)
	cut := make(chan struct{}, 1)
	release := make(chan struct{})
	inner := demo.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete {
			inner.ServeHTTP(w, r)
			return
		}
		signal := func(ch chan struct{}) {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		signal(deleted)
		select {
		case <-r.Context().Done():
			signal(cut)
		case <-release:
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) }) // before up.Close, which waits for handlers
	tc := startCaddyWithUpstream(t, "cleanup_timeout 500ms\n\t\tmax_sessions_per_client 1\n\t\tresume_window off", strings.TrimPrefix(up.URL, "http://"))
	c := tc.openStream(t)
	c.initialize()
	c.close()
	for _, step := range []struct {
		what string
		ch   chan struct{}
	}{{"the upstream DELETE", deleted}, {"the hanging DELETE cut by cleanup_timeout", cut}} {
		select {
		case <-step.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not within 10s (upstream_timeout is 120s)", step.what)
		}
	}
	if code, body := c.post(`{"jsonrpc":"2.0","method":"x"}`); code != http.StatusNotFound {
		t.Errorf("POST after the teardown: %d %s, want 404", code, body)
	}
	eventually(t, 10*time.Second, "the client's slot back", func() bool {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", tc.base+"/sse", nil)
		resp, err := testClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func TestMaxSessions(t *testing.T) {
	tc := startCaddy(t, "max_sessions 2")
	tc.openStream(t)
	tc.openStream(t)
	resp, err := testClient.Get(tc.base + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third stream: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
}

// TestPassThrough: requests that are not the SSE GET or the message POST go
// to the next handler untouched, so a Streamable HTTP client can use the
// same route.
func TestPassThrough(t *testing.T) {
	tc := startCaddy(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "streamable", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tc.base + "/mcp"}, nil)
	if err != nil {
		t.Fatalf("Streamable HTTP client through the same route: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "direct"}})
	if err != nil || res.Content[0].(*mcp.TextContent).Text != "direct" {
		t.Fatalf("echo through pass-through: %v %v", res, err)
	}
}

// TestEndpointURL: relative by default, so it survives a path prefix that
// Caddy strips; absolute under base_url.
func TestEndpointURL(t *testing.T) {
	t.Run("base_url", func(t *testing.T) {
		tc := startCaddy(t, "base_url https://mcp.example.com/")
		c := tc.openStream(t)
		if !strings.HasPrefix(c.endpoint, "https://mcp.example.com/message?session_id=") {
			t.Errorf("endpoint = %q", c.endpoint)
		}
	})
	t.Run("stripped path prefix", func(t *testing.T) {
		up := httptest.NewServer(demo.Handler())
		t.Cleanup(up.Close)
		site := `handle_path /tenant/* {
		mcp_sse
		reverse_proxy {upstream} {
			rewrite /mcp
		}
	}`
		tc := startCaddySite(t, site, "", strings.TrimPrefix(up.URL, "http://"))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client := mcp.NewClient(&mcp.Implementation{Name: "prefixed", Version: "1"}, nil)
		cs, err := client.Connect(ctx, &mcp.SSEClientTransport{Endpoint: tc.base + "/tenant/sse"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "behind a prefix"}})
		if err != nil || res.Content[0].(*mcp.TextContent).Text != "behind a prefix" {
			t.Fatalf("echo behind a prefix: %v %v", res, err)
		}
	})
}

// TestBurstLargerThanQueue: an upstream reply of 5,000 notifications passes
// whole and in order through a session whose queue holds 8: relays wait
// for room instead of dropping the session.
func TestBurstLargerThanQueue(t *testing.T) {
	tc := startCaddyWithUpstream(t, "queue_size 8", burstUpstream(t, 5000))
	tc.openStream(t).expectBurst(5000)
}

// TestSlowCallDoesNotHoldTheNext: a session's next message goes upstream
// once the upstream has the one before, not once that one is answered: a
// slow tool answered as plain JSON must not hold a fast call behind it.
func TestSlowCallDoesNotHoldTheNext(t *testing.T) {
	release := make(chan struct{})
	up := scriptedUpstream(t, 0, func(w http.ResponseWriter, r *http.Request, id json.RawMessage, method string) {
		switch method {
		case "slow":
			select {
			case <-release:
			case <-time.After(30 * time.Second):
			}
		case "fast":
		default:
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, id)
	})
	t.Cleanup(func() { close(release) }) // before the upstream's Close, which waits for handlers
	tc := startCaddyWithUpstream(t, "", up)
	c := tc.openStream(t)
	c.initialize()
	c.send(`{"jsonrpc":"2.0","id":1,"method":"slow"}`)
	c.send(`{"jsonrpc":"2.0","id":2,"method":"fast"}`)
	if m := c.response(10 * time.Second); string(m.ID) != "2" {
		t.Fatalf("first answer %+v, want the fast call's", m)
	}
}
