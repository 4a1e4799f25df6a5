package mcpsse_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

// seenRequest is what the upstream received of one request.
type seenRequest struct {
	method string
	query  string
	header http.Header
	body   string
}

// loggingUpstream is the demo MCP server, logging every request (any method) it
// receives; it returns its host:port and the record.
func loggingUpstream(t *testing.T) (string, *requestLog) {
	t.Helper()
	log := &requestLog{}
	inner := demo.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		log.add(seenRequest{r.Method, r.URL.RawQuery, r.Header.Clone(), string(body)})
		r.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	return strings.TrimPrefix(up.URL, "http://"), log
}

type requestLog struct {
	mu   sync.Mutex
	seen []seenRequest
}

func (l *requestLog) add(r seenRequest) {
	l.mu.Lock()
	l.seen = append(l.seen, r)
	l.mu.Unlock()
}

// post waits for the POST whose body contains marker.
func (l *requestLog) post(t *testing.T, marker string) seenRequest {
	t.Helper()
	var found seenRequest
	eventually(t, 10*time.Second, "a POST upstream with "+marker, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, r := range l.seen {
			if r.method == http.MethodPost && strings.Contains(r.body, marker) {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

func (l *requestLog) posts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.seen {
		if r.method == http.MethodPost {
			n++
		}
	}
	return n
}

// send sends a request and returns its status and body.
func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func bcryptHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestUpstreamSeesWhoPosted: what the handlers before mcp_sse learned of a
// POST (basic_auth's user, vars) reaches the handlers after it, so that
// reverse_proxy can tell the upstream who is calling; the upstream gets
// the message path without the client's query, even one that does not
// parse, and the Mcp-Name the body really carries.
func TestUpstreamSeesWhoPosted(t *testing.T) {
	upstream, seen := loggingUpstream(t)
	site := fmt.Sprintf(`route {
		basic_auth {
			alice %s
			bob %s
		}
		vars tenant acme
		mcp_sse {
			{settings}
		}
		reverse_proxy {upstream} {
			rewrite /mcp
			header_up X-User {http.auth.user.id}
			header_up X-Tenant {vars.tenant}
		}
	}`, bcryptHash(t, "alice-pw"), bcryptHash(t, "bob-pw"))
	tc := startCaddySite(t, site, "", upstream)

	as := func(user string) http.Header {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(user, user+"-pw")
		return r.Header
	}
	post := func(c *rawClient, user, url, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		maps.Copy(req.Header, as(user))
		if code, resp := send(t, req); code != http.StatusAccepted {
			t.Fatalf("POST as %s: %d %s", user, code, resp)
		}
	}
	for _, user := range []string{"alice", "bob"} {
		c := tc.openStreamWith(t, as(user))
		marker := "init-" + user
		post(c, user, c.endpoint, `{"jsonrpc":"2.0","id":"`+marker+`","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
		got := seen.post(t, marker)
		if u, tenant := got.header.Get("X-User"), got.header.Get("X-Tenant"); u != user || tenant != "acme" {
			t.Errorf("%s's initialize reached the upstream with X-User %q, X-Tenant %q; want %q, \"acme\"", user, u, tenant, user)
		}
		if m := c.message(10 * time.Second); m.Result == nil {
			t.Fatalf("initialize answered %+v", m)
		}
	}

	c := tc.openStreamWith(t, as("alice"))
	// A query that does not parse (the %zz) must not take the session id
	// along to the upstream.
	post(c, "alice", c.endpoint+"&x=%zz", `{"jsonrpc":"2.0","id":"q","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if got := seen.post(t, `"id":"q"`); got.query != "" {
		t.Errorf("the upstream got the client's query %q", got.query)
	}
	c.message(10 * time.Second)
	post(c, "alice", c.endpoint, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	// Go's JSON decoding would read "Name" as the tool's name, the SDK
	// upstream "name": a key that differs from one the bridge reads only
	// in case is refused, and Mcp-Name is read by the exact key.
	req, _ := http.NewRequest(http.MethodPost, c.endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":"n","method":"tools/call","params":{"name":"echo","Name":"add","arguments":{"text":"hi"}}}`))
	maps.Copy(req.Header, as("alice"))
	if code, body := send(t, req); code != http.StatusBadRequest || !strings.Contains(body, "only in case") {
		t.Errorf("params with name and Name: %d %s, want 400", code, body)
	}
	post(c, "alice", c.endpoint, `{"jsonrpc":"2.0","id":"n2","method":"tools/call","params":{"n\u0061me":"echo","arguments":{"text":"hi"}}}`)
	if got := seen.post(t, `"id":"n2"`); got.header.Get("Mcp-Name") != "echo" {
		t.Errorf("Mcp-Name %q for a call of echo", got.header.Get("Mcp-Name"))
	}
	if m := c.message(10 * time.Second); m.Error != nil || !strings.Contains(toolText(t, m), "hi") {
		t.Errorf("echo answered %+v", m)
	}
	req, _ = http.NewRequest(http.MethodPost, c.endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":"d","method":"tools/call","params":{"name":"echo","name":"add"}}`))
	maps.Copy(req.Header, as("alice"))
	if code, body := send(t, req); code != http.StatusBadRequest || !strings.Contains(body, "duplicate") {
		t.Errorf("a repeated params.name: %d %s, want 400 naming the duplicate", code, body)
	}

	// A batch's messages share one copy of what the POST carried: each
	// reaches the upstream with it.
	post(c, "alice", c.endpoint, `[{"jsonrpc":"2.0","id":"b1","method":"tools/call","params":{"name":"echo","arguments":{"text":"b1"}}},`+
		`{"jsonrpc":"2.0","id":"b2","method":"tools/call","params":{"name":"echo","arguments":{"text":"b2"}}}]`)
	for _, id := range []string{"b1", "b2"} {
		got := seen.post(t, `"id":"`+id+`"`)
		if u, tenant := got.header.Get("X-User"), got.header.Get("X-Tenant"); u != "alice" || tenant != "acme" {
			t.Errorf("batch message %s reached the upstream with X-User %q, X-Tenant %q; want \"alice\", \"acme\"", id, u, tenant)
		}
	}
}

// TestRebindingRefused: on a site without a host name, the Host and Origin
// headers are the attacker's to choose (DNS rebinding): their agreeing
// proves nothing. Only IP literals and loopback names count as the site's
// own origin there, and only with the scheme the request came in on; a
// named site's own name counts too.
func TestRebindingRefused(t *testing.T) {
	upA, seenA := loggingUpstream(t)
	upB, seenB := loggingUpstream(t)
	port, adminPort := freePort(t), freePort(t)
	loadCaddyfile(t, strings.NewReplacer("{admin}", adminPort, "{port}", port, "{a}", upA, "{b}", upB).Replace(`{
	admin 127.0.0.1:{admin}
	persist_config off
	auto_https off
}

http://mcp.test:{port} {
	bind 127.0.0.1
	mcp_sse {
		max_sessions 1
		resume_window off
	}
	reverse_proxy {a} {
		rewrite /mcp
	}
}

http://:{port} {
	bind 127.0.0.1
	mcp_sse {
		resume_window off
	}
	reverse_proxy {b} {
		rewrite /mcp
	}
}
`))
	base := "http://127.0.0.1:" + port
	get := func(host, origin string) (int, *http.Response, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/sse", nil)
		req.Host = host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return resp.StatusCode, resp, func() { cancel(); resp.Body.Close() }
	}
	tests := []struct {
		name, host, origin string
		status             int
	}{
		{"rebound name on the catch-all site", "evil.test:" + port, "http://evil.test:" + port, 403},
		{"rebound name, default port", "evil.test", "http://evil.test", 403},
		{"IP literal", "127.0.0.1:" + port, "http://127.0.0.1:" + port, 200},
		{"IP literal, other scheme", "127.0.0.1:" + port, "https://127.0.0.1:" + port, 403},
		{"localhost", "localhost:" + port, "http://localhost:" + port, 200},
		{"a .localhost name", "app.localhost:" + port, "http://app.localhost:" + port, 200},
		{"the named site's own name", "mcp.test:" + port, "http://mcp.test:" + port, 200},
		{"the named site, other scheme", "mcp.test:" + port, "https://mcp.test:" + port, 403},
		{"the named site, other port", "mcp.test:" + port, "http://mcp.test:1", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, done := get(tt.host, tt.origin)
			done()
			if code != tt.status {
				t.Errorf("GET /sse with Host %s, Origin %s: %d, want %d", tt.host, tt.origin, code, tt.status)
			}
		})
	}

	// A rebound POST is refused as the GET is: open a session the honest
	// way, then post to it as the rebinding page would.
	code, resp, done := get("127.0.0.1:"+port, "")
	defer done()
	if code != http.StatusOK {
		t.Fatalf("GET /sse: %d", code)
	}
	endpoint := readEndpoint(t, resp)
	req, _ := http.NewRequest(http.MethodPost, base+"/"+endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Host = "evil.test:" + port
	req.Header.Set("Origin", "http://evil.test:"+port)
	if code, body := send(t, req); code != http.StatusForbidden {
		t.Errorf("rebound POST: %d %s, want 403", code, body)
	}

	// Sessions belong to the handler that opened them: the catch-all
	// site's session is unknown to the named site, whose upstream never
	// hears of it, and each site counts its own sessions.
	req, _ = http.NewRequest(http.MethodPost, base+"/"+endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":"cross","method":"ping"}`))
	req.Host = "mcp.test:" + port
	if code, body := send(t, req); code != http.StatusNotFound {
		t.Errorf("POST of the catch-all site's session at the named site: %d %s, want 404", code, body)
	}
	codeA, _, doneA := get("mcp.test:"+port, "")
	defer doneA()
	if codeA != http.StatusOK {
		t.Fatalf("the named site's first session: %d (the catch-all's sessions counted against its max_sessions 1?)", codeA)
	}
	if code, _, done := get("mcp.test:"+port, ""); code != http.StatusServiceUnavailable {
		t.Errorf("the named site's second session: %d, want 503 (max_sessions 1)", code)
		done()
	} else {
		done()
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/"+endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":"own","method":"ping"}`))
	if code, body := send(t, req); code != http.StatusAccepted {
		t.Fatalf("POST at its own site: %d %s", code, body)
	}
	seenB.post(t, `"id":"own"`)
	for _, r := range seenA.seen {
		if strings.Contains(r.body, "cross") {
			t.Error("the named site's upstream received the other site's message")
		}
	}
}

// readEndpoint reads the endpoint event off a stream.
func readEndpoint(t *testing.T, resp *http.Response) string {
	t.Helper()
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			if ref, ok := strings.CutPrefix(line, "data: "); ok {
				lines <- strings.TrimSpace(ref)
				return
			}
		}
	}()
	select {
	case ref, ok := <-lines:
		if !ok {
			t.Fatal("stream ended before its endpoint")
		}
		return ref
	case <-time.After(10 * time.Second):
		t.Fatal("no endpoint within 10s")
	}
	return ""
}

// TestMaxInflight: one session cannot pin unbounded upstream work: past
// max_inflight its POSTs get 429 with Retry-After and a JSON-RPC error,
// and a batch larger than the limit 413. Its answers to the server's own
// requests still get through, or a tool waiting on sampling would hang.
func TestMaxInflight(t *testing.T) {
	tc := startCaddy(t, "max_inflight 2")
	c := tc.openStream(t)
	c.initialize()

	slow := func(id string) string {
		return `{"jsonrpc":"2.0","id":"` + id + `","method":"tools/call","params":{"name":"slow","arguments":{"steps":2,"delay_ms":1500}}}`
	}
	for _, id := range []string{"s1", "s2"} {
		// The initialized notification may still hold a place until the
		// upstream has taken it; a refused POST was not dispatched, so
		// sending it again is safe.
		eventually(t, 10*time.Second, "slow call "+id+" taken", func() bool {
			code, body := c.post(slow(id))
			if code != http.StatusAccepted && code != http.StatusTooManyRequests {
				t.Fatalf("slow call %s: %d %s", id, code, body)
			}
			return code == http.StatusAccepted
		})
	}
	resp, err := http.Post(c.endpoint, "application/json", strings.NewReader(slow("s3")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rpc struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		json.Unmarshal(body, &rpc) != nil || rpc.Error.Code == 0 || !strings.Contains(rpc.Error.Message, "max_inflight") {
		t.Fatalf("third call in flight: %d Retry-After %q %s; want 429 with Retry-After and a JSON-RPC error",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	batch := "[" + slow("b1") + "," + slow("b2") + "," + slow("b3") + "]"
	if code, body := c.post(batch); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a batch of 3 with max_inflight 2: %d %s, want 413", code, body)
	}
	// Responses count apart, but are bounded too.
	responses := `[{"jsonrpc":"2.0","id":"r1","result":{}},{"jsonrpc":"2.0","id":"r2","result":{}},{"jsonrpc":"2.0","id":"r3","result":{}}]`
	if code, body := c.post(responses); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a batch of 3 responses with max_inflight 2: %d %s, want 413", code, body)
	}
	for range 2 {
		if m := c.message(15 * time.Second); m.Error != nil {
			t.Fatalf("slow call: %+v", m.Error)
		}
	}
	eventually(t, 10*time.Second, "room for a call again", func() bool {
		code, _ := c.post(`{"jsonrpc":"2.0","id":"after","method":"ping"}`)
		return code == http.StatusAccepted
	})
	if m := c.message(10 * time.Second); string(m.ID) != `"after"` {
		t.Fatalf("after the slow calls: %+v", m)
	}
}

// TestMaxInflightLetsSamplingAnswersThrough: with the session at its limit
// (one call, waiting on the client's sampling answer), the answer is
// taken and the call completes.
func TestMaxInflightLetsSamplingAnswersThrough(t *testing.T) {
	tc := startCaddy(t, "max_inflight 1")
	c := tc.openStream(t)
	if code, body := c.post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{"sampling":{}},"clientInfo":{"name":"raw","version":"1"}}}`); code != http.StatusAccepted {
		t.Fatalf("initialize: %d %s", code, body)
	}
	c.message(10 * time.Second)
	// The initialize dispatch may still hold the one place after its
	// answer is out; a refused POST was not dispatched, so sending it
	// again is safe.
	eventually(t, 10*time.Second, "the initialized notification taken", func() bool {
		code, body := c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		if code != http.StatusAccepted && code != http.StatusTooManyRequests {
			t.Fatalf("initialized: %d %s", code, body)
		}
		return code == http.StatusAccepted
	})
	// The initialized notification holds the one place until the
	// upstream has taken it; a refused POST was not dispatched, so
	// sending it again is safe.
	eventually(t, 10*time.Second, "the sample call taken", func() bool {
		code, body := c.post(`{"jsonrpc":"2.0","id":"call","method":"tools/call","params":{"name":"sample","arguments":{"prompt":"hi"}}}`)
		if code != http.StatusAccepted && code != http.StatusTooManyRequests {
			t.Fatalf("sample call: %d %s", code, body)
		}
		return code == http.StatusAccepted
	})
	req := c.message(10 * time.Second)
	if req.Method != "sampling/createMessage" {
		t.Fatalf("want a sampling request, got %+v", req)
	}
	answer := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"hello"}}}`, req.ID)
	if code, body := c.post(answer); code != http.StatusAccepted {
		t.Fatalf("the sampling answer of a session at max_inflight: %d %s, want 202", code, body)
	}
	if m := c.message(10 * time.Second); string(m.ID) != `"call"` || !strings.Contains(toolText(t, m), "hello") {
		t.Fatalf("the tool's result: %+v", m)
	}
}

// TestMaxPendingBytes: POST bodies held by dispatches in flight are
// bounded across the process: beyond max_pending_bytes a POST gets 503,
// and the bytes are given back when the dispatches end. Bytes count as
// they arrive: a body that announces itself large and sends nothing holds
// nothing.
func TestMaxPendingBytes(t *testing.T) {
	tc := startCaddy(t, "max_pending_bytes 1MiB\n\t\tmax_message_size 1MiB")
	c := tc.openStream(t)
	c.initialize()
	pad := strings.Repeat("a", 600<<10)
	slow := func(id string) string {
		return `{"jsonrpc":"2.0","id":"` + id + `","method":"tools/call","params":{"name":"slow","arguments":{"steps":1,"delay_ms":1500},"pad":"` + pad + `"}}`
	}
	// Announces 1,000,000 bytes, sends 10, and stalls.
	stalled, err := net.DialTimeout("tcp", strings.TrimPrefix(tc.base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{\"jsonrpc\"", strings.TrimPrefix(c.endpoint, tc.base))

	if code, body := c.post(slow("big1")); code != http.StatusAccepted {
		t.Fatalf("first large call beside a stalled announced body: %d %s", code, body)
	}
	resp, err := http.Post(c.endpoint, "application/json", strings.NewReader(slow("big2")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("second large call while the first is held: %d %s, want 503 with Retry-After", resp.StatusCode, body)
	}
	if m := c.message(15 * time.Second); string(m.ID) != `"big1"` || m.Error != nil {
		t.Fatalf("first large call: %+v", m)
	}
	eventually(t, 10*time.Second, "the held bytes given back", func() bool {
		code, _ := c.post(slow("big3"))
		return code == http.StatusAccepted
	})
	if m := c.message(15 * time.Second); string(m.ID) != `"big3"` || m.Error != nil {
		t.Fatalf("large call after the first ended: %+v", m)
	}
}

// TestPendingBytesShare: one client address may hold a quarter of
// max_pending_bytes (or one max_message_size, if larger), so it cannot
// take the whole budget from the others.
func TestPendingBytesShare(t *testing.T) {
	tc := startCaddy(t, "max_pending_bytes 1MiB\n\t\tmax_message_size 200KiB")
	pad := strings.Repeat("a", 150<<10)
	slow := func(id string) string {
		return `{"jsonrpc":"2.0","id":"` + id + `","method":"tools/call","params":{"name":"slow","arguments":{"steps":1,"delay_ms":1500},"pad":"` + pad + `"}}`
	}
	a := tc.openStream(t)
	a.initialize()
	a.send(slow("a1"))
	if code, body := a.post(slow("a2")); code != http.StatusServiceUnavailable {
		t.Errorf("a client's second 150 KiB call (over its 256 KiB share): %d %s, want 503", code, body)
	}
	// Another address (loopback has all of 127/8) has a share of its own.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")},
	}).DialContext}}
	b := tc.openStreamVia(t, other, nil)
	if code, body := postVia(t, other, b.endpoint, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"b","version":"1"}}}`); code != http.StatusAccepted {
		t.Fatalf("b initialize: %d %s", code, body)
	}
	b.message(10 * time.Second)
	if code, body := postVia(t, other, b.endpoint, slow("b1")); code != http.StatusAccepted {
		t.Errorf("another client's call while the first holds its share: %d %s, want 202", code, body)
	}
	if m := a.message(15 * time.Second); string(m.ID) != `"a1"` {
		t.Fatalf("a1: %+v", m)
	}
	if m := b.message(15 * time.Second); string(m.ID) != `"b1"` {
		t.Fatalf("b1: %+v", m)
	}
}

// TestBodyTimeout: a client that trickles its POST body does not hold the
// connection: past body_timeout it is answered 408.
func TestBodyTimeout(t *testing.T) {
	tc := startCaddy(t, "body_timeout 1s")
	c := tc.openStream(t)
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(tc.base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	path := strings.TrimPrefix(c.endpoint, tc.base)
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":", path, strings.TrimPrefix(tc.base, "http://"))
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "body_timeout") {
		t.Fatalf("stalled body: %d %s, want 408 naming body_timeout", resp.StatusCode, body)
	}
}

// TestUpstreamSeesHTTPS: a message posted over HTTPS reaches the upstream
// marked so (X-Forwarded-Proto: https), as the POST itself would be.
func TestUpstreamSeesHTTPS(t *testing.T) {
	certFile, keyFile := tlsFiles(t)
	t.Setenv("XDG_DATA_HOME", t.TempDir()) // Caddy keeps its data there
	t.Setenv("HOME", t.TempDir())
	upstream, seen := loggingUpstream(t)
	port, adminPort := freePort(t), freePort(t)
	loadCaddyfile(t, strings.NewReplacer("{cert}", certFile, "{key}", keyFile, "{admin}", adminPort, "{port}", port, "{upstream}", upstream).Replace(`{
	admin 127.0.0.1:{admin}
	persist_config off
	skip_install_trust
	default_sni 127.0.0.1
}

https://127.0.0.1:{port} {
	bind 127.0.0.1
	tls {cert} {key}
	mcp_sse
	reverse_proxy {upstream} {
		rewrite /mcp
	}
}
`))
	base := "https://127.0.0.1:" + port
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // self-signed, made for this test (tlsFiles)
	}}
	var resp *http.Response
	eventually(t, 10*time.Second, "the TLS site answering", func() bool {
		var err error
		resp, err = client.Get(base + "/sse")
		return err == nil
	})
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse: %s", resp.Status)
	}
	endpoint := readEndpoint(t, resp)
	r, err := client.Post(base+"/"+endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":"tls","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %s", r.Status)
	}
	if got := seen.post(t, `"id":"tls"`).header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("the upstream saw X-Forwarded-Proto %q for an HTTPS client", got)
	}
}
