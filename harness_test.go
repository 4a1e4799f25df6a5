package mcpsse_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddyfilefmt "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/mcpsse/caddy-mcp-sse"
	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
	"github.com/mcpsse/caddy-mcp-sse/session"
	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// testCaddy is a real Caddy, run in this process, with mcp_sse in front of
// reverse_proxy to a real MCP server.
type testCaddy struct {
	t         *testing.T
	base      string // http://127.0.0.1:port
	admin     string // http://127.0.0.1:port of the admin API
	logFile   string
	upstream  string // host:port the reverse_proxy dials
	port      string
	adminPort string
	site      string // the body of the site block
}

// caddyfileTemplate is the Caddyfile of the tests.
const caddyfileTemplate = `{
	admin 127.0.0.1:{admin}
	persist_config off
	auto_https off
	log {
		output file {log}
		format json
		level DEBUG
	}
}

http://127.0.0.1:{port} {
	bind 127.0.0.1
	{site}
}
`

// defaultSite is the site body of most tests: {settings} goes inside the
// mcp_sse block.
const defaultSite = `mcp_sse {
		{settings}
	}
	reverse_proxy {upstream} {
		rewrite /mcp
	}`

// startCaddy starts the demo MCP server (the Go SDK's Streamable HTTP
// handler) on a loopback port and a Caddy that fronts it.
func startCaddy(t *testing.T, settings string) *testCaddy {
	t.Helper()
	up := httptest.NewServer(demo.Handler())
	t.Cleanup(up.Close)
	return startCaddyWithUpstream(t, settings, strings.TrimPrefix(up.URL, "http://"))
}

func startCaddyWithUpstream(t *testing.T, settings, upstream string) *testCaddy {
	t.Helper()
	return startCaddySite(t, defaultSite, settings, upstream)
}

// startCaddySite starts Caddy with site as the body of its one site.
func startCaddySite(t *testing.T, site, settings, upstream string) *testCaddy {
	t.Helper()
	tc := &testCaddy{
		site:      site,
		t:         t,
		logFile:   filepath.Join(t.TempDir(), "caddy.log"),
		upstream:  upstream,
		port:      freePort(t),
		adminPort: freePort(t),
	}
	tc.base = "http://127.0.0.1:" + tc.port
	tc.admin = "http://127.0.0.1:" + tc.adminPort
	cfg := tc.adapt(tc.caddyfile(settings))
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading Caddy config: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping Caddy: %v", err)
		}
		if t.Failed() {
			var lines []map[string]any
			for _, l := range tc.logs("") {
				if l["logger"] == "http.handlers.mcp_sse" || l["logger"] == "http.handlers.reverse_proxy" {
					lines = append(lines, l)
				}
			}
			for _, l := range lines[max(0, len(lines)-40):] {
				t.Logf("caddy log: %v", l)
			}
		}
	})
	return tc
}

func (tc *testCaddy) caddyfile(settings string) string {
	withSite := strings.ReplaceAll(caddyfileTemplate, "{site}", tc.site)
	return strings.NewReplacer(
		"{admin}", tc.adminPort, "{port}", tc.port, "{log}", tc.logFile,
		"{upstream}", tc.upstream, "{settings}", settings,
	).Replace(withSite)
}

// loadCaddyfile runs Caddy on a Caddyfile of the test's own, stopped when
// the test ends.
func loadCaddyfile(t testing.TB, caddyfile string) {
	t.Helper()
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfilefmt.Format([]byte(caddyfile)), nil)
	if err != nil || len(warn) > 0 {
		t.Fatalf("adapting Caddyfile: %v %v\n%s", err, warn, caddyfile)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading Caddy config: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping Caddy: %v", err)
		}
	})
}

// reload loads the test's Caddyfile with other settings through the admin
// API, as an operator would, and fails the test unless Caddy took it.
func (tc *testCaddy) reload(settings string) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tc.admin+"/load", strings.NewReader(tc.caddyfile(settings)))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := handoverClient(nil).Do(req)
	if err != nil {
		tc.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tc.t.Fatalf("reload: %s %s", resp.Status, body)
	}
}

// countingUpstream is the demo MCP server counting the requests of one
// method it receives; it returns its host:port and the count.
func countingUpstream(t *testing.T, method string) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	inner := demo.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == method {
			n.Add(1)
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	return strings.TrimPrefix(up.URL, "http://"), &n
}

// upstreamPOST is one message POST as the upstream read it.
type upstreamPOST struct {
	Header http.Header
	ID     string // the raw JSON id, "" for a notification
	Method string
	Text   string // params.arguments.text, as the echo tool takes it
}

// recorder is the demo MCP server recording each POST it receives, in the
// order it read their bodies.
type recorder struct {
	addr  string
	mu    sync.Mutex
	posts []upstreamPOST
}

// recordingUpstream starts a recorder. hold, if not nil, runs for each
// POST before its body is read; the bridge hands a session's next message
// upstream only once the one before has been read.
func recordingUpstream(t *testing.T, hold func(*http.Request)) *recorder {
	t.Helper()
	rec := &recorder{}
	inner := demo.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if hold != nil {
				hold(r)
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
				Params struct {
					Arguments struct {
						Text string `json:"text"`
					} `json:"arguments"`
				} `json:"params"`
			}
			json.Unmarshal(body, &m)
			rec.mu.Lock()
			rec.posts = append(rec.posts, upstreamPOST{Header: r.Header.Clone(), ID: string(m.ID), Method: m.Method, Text: m.Params.Arguments.Text})
			rec.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	rec.addr = strings.TrimPrefix(up.URL, "http://")
	return rec
}

// received returns the POSTs of method received so far, in order.
func (rec *recorder) received(method string) []upstreamPOST {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []upstreamPOST
	for _, p := range rec.posts {
		if p.Method == method {
			out = append(out, p)
		}
	}
	return out
}

// scriptedUpstream is a legacy upstream for tests that script a method or
// two: each POST is decoded, server/discover gets 404 (as from a legacy
// server), initialize is answered after initDelay (a slow upstream) with
// session up-N, N counting the initializes received (each opens a session
// of its own, as on a real server), and every other message goes to
// handle; other HTTP methods get 200. It returns its host:port.
func scriptedUpstream(t *testing.T, initDelay time.Duration, handle func(w http.ResponseWriter, r *http.Request, id json.RawMessage, method string)) string {
	t.Helper()
	var inits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusOK)
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &m)
		switch m.Method {
		case "initialize":
			n := inits.Add(1)
			time.Sleep(initDelay)
			w.Header().Set("Mcp-Session-Id", fmt.Sprintf("up-%d", n))
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2024-11-05","capabilities":{},"serverInfo":{"name":"scripted","version":"1"}}}`, m.ID)
		case "server/discover":
			http.NotFound(w, r)
		default:
			handle(w, r, m.ID, m.Method)
		}
	}))
	t.Cleanup(up.Close)
	return strings.TrimPrefix(up.URL, "http://")
}

// burstUpstream is an upstream whose reply to any request is n
// notifications (params.seq 0…n-1) in one event stream, then the result.
func burstUpstream(t *testing.T, n int) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID json.RawMessage `json:"id"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range n {
			fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"seq\":%d}}\n\n", i)
		}
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\n\n", req.ID)
	}))
	t.Cleanup(up.Close)
	return strings.TrimPrefix(up.URL, "http://")
}

// expectBurst posts a call to a burstUpstream and checks that its n
// notifications arrive whole and in order before the result.
func (c *rawClient) expectBurst(n int) {
	c.t.Helper()
	c.send(`{"jsonrpc":"2.0","id":"burst","method":"burst"}`)
	for i := range n {
		m := c.message(10 * time.Second)
		var p struct {
			Seq int `json:"seq"`
		}
		if m.Method != "notifications/message" || json.Unmarshal(m.Params, &p) != nil || p.Seq != i {
			c.t.Fatalf("message %d = %+v %s", i, m, m.Params)
		}
	}
	if m := c.message(10 * time.Second); string(m.ID) != `"burst"` || m.Error != nil {
		c.t.Fatalf("after the burst: %+v", m)
	}
}

func (tc *testCaddy) adapt(caddyfile string) []byte {
	tc.t.Helper()
	// Settings are spliced in as text; format it as caddy fmt would, so
	// the adapter's only complaint would be a real one.
	formatted := caddyfilefmt.Format([]byte(caddyfile))
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(formatted, nil)
	if err != nil {
		tc.t.Fatalf("adapting Caddyfile: %v\n%s", err, caddyfile)
	}
	if len(warn) > 0 {
		tc.t.Fatalf("adapt warnings: %v", warn)
	}
	return cfg
}

// logs returns the log lines whose message contains msg.
func (tc *testCaddy) logs(msg string) []map[string]any {
	tc.t.Helper()
	data, err := os.ReadFile(tc.logFile)
	if err != nil {
		tc.t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range bytes.Split(data, []byte("\n")) {
		var entry map[string]any
		if json.Unmarshal(line, &entry) == nil && strings.Contains(fmt.Sprint(entry["msg"]), msg) {
			out = append(out, entry)
		}
	}
	return out
}

// testClient is the client of requests whose whole exchange is short: a
// server that stops answering fails the test instead of hanging it.
var testClient = &http.Client{Timeout: 30 * time.Second}

// freePort is a port for a server this test starts (see testport for why
// not simply port 0).
func freePort(t testing.TB) string { return testport.Free(t) }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawClient is an SSE client written against the wire, for tests that
// must see frames exactly as sent and in order.
type rawClient struct {
	t        *testing.T
	resp     *http.Response
	endpoint string      // absolute message URL
	opening  sse.Event   // the endpoint event, with its id
	header   http.Header // sent with every request of the client
	events   chan sse.Event
	cancel   context.CancelFunc
	ctx      context.Context
	stopRead chan struct{}
}

func (tc *testCaddy) openStream(t *testing.T) *rawClient {
	t.Helper()
	return tc.openStreamWith(t, nil)
}

// openStreamWith opens a stream with extra request headers; its POSTs
// (post, send) carry the same headers.
func (tc *testCaddy) openStreamWith(t *testing.T, header http.Header) *rawClient {
	t.Helper()
	return tc.openStreamVia(t, http.DefaultClient, header)
}

// openStreamVia is openStreamWith through client (one with a cookie jar,
// say).
func (tc *testCaddy) openStreamVia(t *testing.T, client *http.Client, header http.Header) *rawClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// A stream that does not open within the deadline is cut, and the
	// test fails on it.
	opening := time.AfterFunc(10*time.Second, cancel)
	defer opening.Stop()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.base+"/sse", nil)
	maps.Copy(req.Header, header)
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET /sse: %s", resp.Status)
	}
	c := &rawClient{t: t, resp: resp, header: header, events: make(chan sse.Event, 1024), cancel: cancel, ctx: ctx, stopRead: make(chan struct{})}
	t.Cleanup(c.close)
	go c.read()
	ev := c.next(5 * time.Second)
	if ev.Name != sse.EventEndpoint {
		t.Fatalf("first event %q, want endpoint", ev.Name)
	}
	c.opening = ev
	u, err := url.Parse(tc.base + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := u.Parse(string(ev.Data))
	if err != nil {
		t.Fatal(err)
	}
	c.endpoint = ref.String()
	return c
}

func (c *rawClient) read() {
	defer close(c.events)
	var p sse.Parser
	br := bufio.NewReader(c.resp.Body)
	buf := make([]byte, 32<<10)
	for {
		select {
		case <-c.stopRead:
			<-c.ctx.Done()
			return
		default:
		}
		n, err := br.Read(buf)
		if n > 0 {
			_ = p.Feed(buf[:n], func(e sse.Event) error { c.events <- e; return nil })
		}
		if err != nil {
			return
		}
	}
}

// cancelReads makes the client stop reading its stream, as a client that
// hangs does, while its connection stays open.
func (c *rawClient) cancelReads() {
	close(c.stopRead)
}

func (c *rawClient) close() {
	c.cancel()
	c.resp.Body.Close()
}

// next returns the next event, keepalives included.
func (c *rawClient) next(within time.Duration) sse.Event {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatal("stream ended")
		}
		return ev
	case <-time.After(within):
		c.t.Fatalf("no event within %s", within)
	}
	panic("unreachable")
}

// waitEnd reads the stream, discarding what comes, until it ends.
func (c *rawClient) waitEnd(within time.Duration) {
	c.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-c.events:
			if !ok {
				return
			}
		case <-deadline:
			c.t.Fatalf("stream still open after %s", within)
		}
	}
}

// closedReason waits for the "session closed" log line of the session
// behind c and returns its reason.
func (tc *testCaddy) closedReason(c *rawClient, within time.Duration) string {
	tc.t.Helper()
	short := session.ShortID(idOf(c))
	var reason string
	eventually(tc.t, within, "the session's close logged", func() bool {
		for _, l := range tc.logs("session closed") {
			if l["session"] == short {
				reason, _ = l["reason"].(string)
				return true
			}
		}
		return false
	})
	return reason
}

// rpcMessage is a JSON-RPC message read off the stream.
type rpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int            `json:"code"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	} `json:"error"`
}

// message returns the next message frame, skipping keepalives.
func (c *rawClient) message(within time.Duration) rpcMessage {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ev := c.next(time.Until(deadline))
		if ev.Name != sse.EventMessage {
			continue
		}
		var m rpcMessage
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			c.t.Fatalf("message frame is not JSON: %q", ev.Data)
		}
		return m
	}
}

// post sends body to the session's endpoint and returns the status and
// response body.
func (c *rawClient) post(body string) (int, string) {
	c.t.Helper()
	return postHeaders(c.t, testClient, c.endpoint, body, c.header)
}

func postTo(t *testing.T, endpoint, body string) (int, string) {
	t.Helper()
	return postVia(t, testClient, endpoint, body)
}

// postVia is postTo through client.
func postVia(t *testing.T, client *http.Client, endpoint, body string) (int, string) {
	t.Helper()
	return postHeaders(t, client, endpoint, body, nil)
}

// postHeaders is postVia with extra request headers.
func postHeaders(t *testing.T, client *http.Client, endpoint, body string, header http.Header) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the POST's response: %v", err)
	}
	return resp.StatusCode, string(b)
}

// send posts body to the session's endpoint and fails the test unless the
// bridge took it (202): a refused POST must not show up later as a
// missing event.
func (c *rawClient) send(body string) {
	c.t.Helper()
	if code, reply := c.post(body); code != http.StatusAccepted {
		c.t.Fatalf("POST %.200s: %d %s", body, code, reply)
	}
}

// initialize runs the MCP handshake on the raw stream.
func (c *rawClient) initialize() {
	c.t.Helper()
	if code, body := c.post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`); code != http.StatusAccepted {
		c.t.Fatalf("POST initialize: %d %s", code, body)
	}
	if m := c.message(10 * time.Second); string(m.ID) != "0" || m.Result == nil {
		c.t.Fatalf("initialize answered %+v", m)
	}
	if code, body := c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`); code != http.StatusAccepted {
		c.t.Fatalf("POST initialized: %d %s", code, body)
	}
}

// toolText returns the first text content of a tools/call result.
func toolText(t *testing.T, m rpcMessage) string {
	t.Helper()
	var res struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if m.Error != nil {
		t.Fatalf("tools/call failed: %+v", *m.Error)
	}
	if err := json.Unmarshal(m.Result, &res); err != nil || len(res.Content) == 0 {
		t.Fatalf("tools/call result %s: %v", m.Result, err)
	}
	return res.Content[0].Text
}

// handoverClient sends each request on a connection of its own and
// retries one that a reload's listener handover cut before any server read
// it. Caddy replaces the admin server on every load and, on Linux, opens a
// new SO_REUSEPORT socket for each config and closes the old one: a
// connection still in the old socket's accept queue is reset, and one kept
// alive to the old server is closed. Go's client retries neither for a
// POST. retries, if not nil, counts the retried requests.
func handoverClient(retries *atomic.Int64) *http.Client {
	return &http.Client{Transport: retryUnread{&http.Transport{DisableKeepAlives: true}, retries}}
}

// retryUnread retries a request whose fresh connection failed before any
// response arrived: reset while the request was written (EPIPE) or after
// (ECONNRESET), or closed with nothing read (EOF).
type retryUnread struct {
	rt      http.RoundTripper
	retries *atomic.Int64
}

func (r retryUnread) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := r.rt.RoundTrip(req)
		if err == nil || attempt == 5 || !cutUnread(err) {
			return resp, err
		}
		if r.retries != nil {
			r.retries.Add(1)
		}
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func cutUnread(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF)
}
