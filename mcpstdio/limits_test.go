package mcpstdio_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
)

// stalledPost sends a POST's head announcing a body of size bytes and
// only sent of them, and returns the connection, left open.
func stalledPost(t *testing.T, tc *testCaddy, hdr http.Header, size, sent int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", "127.0.0.1:"+tc.port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: %d\r\n", tc.port, size)
	for k, vs := range hdr {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.WriteString(strings.Repeat(" ", sent))
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	return conn
}

// statusOf reads the status code of the response on conn, waiting at most
// within.
func statusOf(t *testing.T, conn net.Conn, within time.Duration) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response within %s: %v", within, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestPostRefusedBeforeItsBody: a POST naming a session that does not
// exist, or another identity's, is answered from its headers, without
// waiting for a body it may never send.
func TestPostRefusedBeforeItsBody(t *testing.T) {
	tc := startCaddy(t, site(`identity {http.request.header.X-User}
		body_timeout off`))
	alice := newRaw(t, tc)
	alice.header.Set("X-User", "alice")
	alice.initialize()

	for _, tt := range []struct {
		name string
		hdr  http.Header
		want int
	}{
		{"unknown session", http.Header{"Mcp-Session-Id": {"no-such-session"}}, http.StatusNotFound},
		{"another identity", http.Header{"Mcp-Session-Id": {alice.id}, "X-User": {"mallory"}}, http.StatusForbidden},
		{"unknown protocol version", http.Header{"Mcp-Session-Id": {alice.id}, "X-User": {"alice"}, "Mcp-Protocol-Version": {"2099-01-01"}}, http.StatusBadRequest},
		{"foreign origin", http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := stalledPost(t, tc, tt.hdr, 4<<20, 10)
			if got := statusOf(t, conn, 10*time.Second); got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
		})
	}
}

// TestBodyTimeout: a body that does not arrive within body_timeout gets
// 408, session or not.
func TestBodyTimeout(t *testing.T) {
	tc := startCaddy(t, site(`body_timeout 500ms`))
	conn := stalledPost(t, tc, nil, 1000, 10)
	if got := statusOf(t, conn, 10*time.Second); got != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", got)
	}
}

// TestMaxPendingBytes: bytes of bodies being read count against
// max_pending_bytes (one client may hold a quarter, or one largest
// message); beyond it a POST gets 503 with Retry-After, and the bytes are
// given back when the stalled POST goes.
func TestMaxPendingBytes(t *testing.T) {
	tc := startCaddy(t, site(`body_timeout off
		max_message_size 256KiB
		max_pending_bytes 1MiB`))
	c := newRaw(t, tc)
	c.initialize()
	stalled := stalledPost(t, tc, http.Header{"Mcp-Session-Id": {c.id}}, 256<<10, 200<<10)
	// The stalled body's bytes are counted as they arrive: wait until all
	// of them are (caddy_mcp_stdio_pending_bytes), for a POST racing them
	// could be the one that fits, and the stalled one refused instead.
	eventually(t, 10*time.Second, "the stalled body's 200 KiB to be counted", func() bool {
		return metricValue(t, tc, "caddy_mcp_stdio_pending_bytes") >= 200<<10
	})
	big := `{"jsonrpc":"2.0","method":"notifications/noise","params":{"pad":"` + strings.Repeat("x", 100<<10) + `"}}`
	r := c.do(http.MethodPost, big)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("a POST beyond the client's share: %d %s, want 503", r.status, r.body)
	}
	if r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "too many messages") {
		t.Errorf("503 without Retry-After or reason: %v %s", r.header, r.body)
	}
	stalled.Close()
	eventually(t, 10*time.Second, "the stalled body's bytes to be given back", func() bool {
		return c.do(http.MethodPost, big).status == http.StatusAccepted
	})
}

// TestBatchAndInflightLimits: max_batch_size and max_inflight, with the
// statuses of mcp_sse: 413 for a batch over either, 429 with Retry-After
// for a POST that would put too many requests in flight.
func TestBatchAndInflightLimits(t *testing.T) {
	tc := startCaddy(t, site(`max_batch_size 3
		max_inflight 2`))
	c := newRaw(t, tc)
	c.initialize()
	note := `{"jsonrpc":"2.0","method":"notifications/noise"}`
	if r := c.do(http.MethodPost, "["+strings.Repeat(note+",", 3)+note+"]"); r.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.body), "max_batch_size") {
		t.Errorf("batch of 4 under max_batch_size 3: %d %s", r.status, r.body)
	}
	three := `[{"jsonrpc":"2.0","id":11,"method":"ping"},{"jsonrpc":"2.0","id":12,"method":"ping"},{"jsonrpc":"2.0","id":13,"method":"ping"}]`
	if r := c.do(http.MethodPost, three); r.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.body), "max_inflight") {
		t.Errorf("batch of 3 requests under max_inflight 2: %d %s", r.status, r.body)
	}

	// Two slow calls in flight fill max_inflight; each is known to be in
	// flight once its event stream has begun (its first progress).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	streaming := make(chan int, 2)
	for id := 1; id <= 2; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"slow","arguments":{"steps":1000,"delay_ms":50},"_meta":{"progressToken":%d}}}`, id, id)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Session-Id", c.id)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				streaming <- 0
				return
			}
			defer resp.Body.Close()
			streaming <- resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
		}()
	}
	for range 2 {
		select {
		case status := <-streaming:
			if status != http.StatusOK {
				t.Fatalf("a slow call answered %d", status)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the slow calls did not begin within 10s")
		}
	}
	r := c.do(http.MethodPost, `{"jsonrpc":"2.0","id":3,"method":"ping"}`)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "max_inflight") {
		t.Errorf("a third request under max_inflight 2: %d %v %s", r.status, r.header, r.body)
	}
	// Notifications are not requests in flight: they still go through.
	c.post(note, http.StatusAccepted)
	cancel()
	wg.Wait()
	eventually(t, 10*time.Second, "room once the calls are gone", func() bool {
		return c.do(http.MethodPost, `{"jsonrpc":"2.0","id":4,"method":"ping"}`).status == http.StatusOK
	})
}

// TestProtocolVersionHeader: a request naming an unknown or malformed
// Mcp-Protocol-Version gets 400, whatever its method; a known one, or
// none, is served.
func TestProtocolVersionHeader(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	c.initialize()
	for _, v := range []string{"2099-01-01", "latest", "2025-06-18, 2025-03-26"} {
		c.header.Set("Mcp-Protocol-Version", v)
		for _, method := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
			body := ""
			if method == http.MethodPost {
				body = `{"jsonrpc":"2.0","id":1,"method":"ping"}`
			}
			if r := c.do(method, body); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "Mcp-Protocol-Version") {
				t.Errorf("%s with Mcp-Protocol-Version %q: %d %s, want 400", method, v, r.status, r.body)
			}
		}
	}
	c.header.Set("Mcp-Protocol-Version", "2025-06-18")
	c.post(`{"jsonrpc":"2.0","id":2,"method":"ping"}`, http.StatusOK)
	c.header.Del("Mcp-Protocol-Version")
	c.post(`{"jsonrpc":"2.0","id":3,"method":"ping"}`, http.StatusOK)
}

// TestForeignOriginEveryMethod: GET and DELETE from a foreign Origin get
// 403 as POST does, and the session lives on.
func TestForeignOriginEveryMethod(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	c.initialize()
	evil := newRaw(t, tc)
	evil.id = c.id
	evil.header.Set("Origin", "http://evil.example")
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		if r := evil.do(method, ""); r.status != http.StatusForbidden {
			t.Errorf("%s from a foreign Origin: %d %s, want 403", method, r.status, r.body)
		}
	}
	c.post(`{"jsonrpc":"2.0","id":1,"method":"ping"}`, http.StatusOK)
}

// doAccept is c.do with an Accept header of the caller's.
func (c *rawClient) doAccept(method, accept, body string) reply {
	c.t.Helper()
	saved := c.header
	c.header = saved.Clone()
	c.header.Set("Accept", accept)
	defer func() { c.header = saved }()
	req, _ := http.NewRequest(method, c.url, strings.NewReader(body))
	for k, v := range c.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if c.id != "" {
		req.Header.Set("Mcp-Session-Id", c.id)
	}
	resp, err := rawHTTP.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestBacklogDeliveredOnGet: what the process sends while no stream can
// carry it (a notification written at start, while the only request is
// an initialize that accepts JSON alone) waits, and is the first thing
// the GET stream delivers when it opens.
func TestBacklogDeliveredOnGet(t *testing.T) {
	tc := startCaddy(t, `mcp_stdio stdioserver -big-line 100 {
		stop_timeout 1s
	}`)
	c := newRaw(t, tc)
	r := c.doAccept(http.MethodPost, "application/json", initBody)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("initialize accepting JSON only: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	c.id = r.header.Get("Mcp-Session-Id")
	c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, http.StatusAccepted)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
		t.Fatalf("GET: %s", resp.Status)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("the GET stream ended before the waiting notification: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			if !strings.Contains(data, `"notifications/message"`) || !strings.Contains(data, strings.Repeat("x", 100)) {
				t.Fatalf("first message on the GET stream: %.200s", data)
			}
			return
		}
	}
}

// TestJSONOnlyPostNeverStreams: a POST whose Accept allows JSON alone
// gets its response as JSON, even when the process sends notifications
// during the call (they go elsewhere).
func TestJSONOnlyPostNeverStreams(t *testing.T) {
	tc := startCaddy(t, site(""))
	c := newRaw(t, tc)
	c.initialize()
	r := c.doAccept(http.MethodPost, "application/json",
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"steps":3,"delay_ms":10},"_meta":{"progressToken":"p"}}}`)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" || !strings.Contains(string(r.body), "done after 3 steps") {
		t.Fatalf("JSON-only call with progress: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
}

// TestEndedProcessesGiveSlotsBack: with max_processes_per_client 1, a
// client whose sessions end (DELETE, or the process exiting) can start
// another each time.
func TestEndedProcessesGiveSlotsBack(t *testing.T) {
	tc := startCaddy(t, site(`max_processes_per_client 1`))
	for round := range 3 {
		c := newRaw(t, tc)
		eventually(t, 10*time.Second, fmt.Sprintf("round %d: the slot of the ended process", round), func() bool {
			r := c.do(http.MethodPost, initBody)
			c.id = r.header.Get("Mcp-Session-Id")
			return r.status == http.StatusOK && c.id != ""
		})
		c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, http.StatusAccepted)
		if round%2 == 0 {
			if r := c.do(http.MethodDelete, ""); r.status != http.StatusNoContent {
				t.Fatalf("DELETE: %d", r.status)
			}
		} else {
			// The process exits on its own.
			c.post(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crash","arguments":{}}}`, http.StatusOK)
		}
	}
}

// TestConcurrentInitializesWithinMaxProcesses: initializes racing each
// other never start more than max_processes, processes still starting
// included.
func TestConcurrentInitializesWithinMaxProcesses(t *testing.T) {
	tc := startCaddy(t, site(`max_processes 2
		max_processes_per_client off`))
	const n = 12
	statuses := make(chan int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest(http.MethodPost, tc.base+"/mcp", strings.NewReader(initBody))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := rawHTTP.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get("Mcp-Session-Id") == "" {
				statuses <- -1
				return
			}
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	started := 0
	for s := range statuses {
		switch s {
		case http.StatusOK:
			started++
		case http.StatusServiceUnavailable:
		default:
			t.Errorf("an initialize answered %d", s)
		}
	}
	if started != 2 {
		t.Errorf("%d initializes started a session under max_processes 2", started)
	}
	if got := len(listProcesses(t, tc)); got > 2 {
		t.Errorf("%d processes running under max_processes 2", got)
	}
}

// TestProcessesPerClientIPv6Prefix: max_processes_per_client counts an
// IPv6 client by its /64. The client address comes from X-Forwarded-For,
// which Caddy trusts from loopback here.
func TestProcessesPerClientIPv6Prefix(t *testing.T) {
	tc := loadOwnCaddyfile(t, `{
	admin off
	persist_config off
	auto_https off
	servers {
		trusted_proxies static 127.0.0.1/32
		client_ip_headers X-Forwarded-For
	}
}

http://127.0.0.1:{port} {
	bind 127.0.0.1
	mcp_stdio stdioserver {
		stop_timeout 1s
		max_processes_per_client 1
	}
}
`)
	from := func(addr string) *rawClient {
		c := newRaw(t, tc)
		c.header.Set("X-Forwarded-For", addr)
		return c
	}
	from("2001:db8:0:1::1").initialize()
	r := from("2001:db8:0:1::2").post(initBody, http.StatusServiceUnavailable)
	if !strings.Contains(string(r.body), "max_processes_per_client") {
		t.Errorf("503 for another reason: %s", r.body)
	}
	from("2001:db8:0:2::1").initialize()
}

// TestIdleDespiteServerNotifications: a session whose client went away
// idles out even while its process keeps sending notifications on its
// own.
func TestIdleDespiteServerNotifications(t *testing.T) {
	tc := startCaddy(t, site(`idle_timeout 1s`))
	c := newRaw(t, tc)
	c.initialize()
	c.post(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}`, http.StatusOK)
	// Notifications every 50ms for a minute, outside any request.
	r := c.callTool(2, "flood", `{"count":1200,"size":10,"every_ms":50,"detach":true}`)
	if got := toolText(t, r.msgs[len(r.msgs)-1]); got != "detached" {
		t.Fatalf("flood: %s", got)
	}
	eventually(t, 15*time.Second, "the session to idle out", func() bool { return len(listProcesses(t, tc)) == 0 })
	c.post(`{"jsonrpc":"2.0","id":3,"method":"ping"}`, http.StatusNotFound)
}

// TestSlowConsumerClosed: a client that stops reading a stream the
// process keeps filling has it closed once it stays full (in bytes) for
// send_timeout; the session lives on and serves its next request.
func TestSlowConsumerClosed(t *testing.T) {
	tc := startCaddy(t, site(`max_queued_bytes 64KiB
		send_timeout 1s`))
	c := newRaw(t, tc)
	c.initialize()
	// 8 MiB of progress notifications: more than the socket buffers take.
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"flood","arguments":{"count":256,"size":32768},"_meta":{"progressToken":"p"}}}`
	conn, err := net.Dial("tcp", "127.0.0.1:"+tc.port)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(4096)
	}
	fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: %s\r\nContent-Length: %d\r\n\r\n%s", tc.port, c.id, len(body), body)
	// The client reads nothing.
	eventually(t, 30*time.Second, "the slow consumer to be closed", func() bool {
		for _, l := range tc.logs("http.handlers.mcp_stdio") {
			if strings.HasPrefix(fmt.Sprint(l["msg"]), "closing a slow consumer") {
				return true
			}
		}
		return false
	})
	c.post(`{"jsonrpc":"2.0","id":2,"method":"ping"}`, http.StatusOK)
}

// loadOwnCaddyfile runs Caddy on a Caddyfile of the test's own (%s is
// the port of its one site), stopped when the test ends, when no process
// it started may be left.
func loadOwnCaddyfile(t *testing.T, caddyfileFmt string) *testCaddy {
	t.Helper()
	port := testport.Free(t)
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile.Format([]byte(strings.ReplaceAll(caddyfileFmt, "{port}", port))), nil)
	if err != nil || len(warn) > 0 {
		t.Fatalf("adapting: %v %v", err, warn)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping Caddy: %v", err)
		}
		noneLeft(t, 10*time.Second)
	})
	return &testCaddy{t: t, base: "http://127.0.0.1:" + port, port: port}
}

// TestAccessLogFilterDropsSessionID: the README's log filter keeps the
// session id out of Caddy's access log, request and response headers
// alike.
func TestAccessLogFilterDropsSessionID(t *testing.T) {
	logFile := t.TempDir() + "/access.log"
	tc := loadOwnCaddyfile(t, `{
	admin off
	persist_config off
	auto_https off
}

http://127.0.0.1:{port} {
	bind 127.0.0.1
	log {
		output file `+logFile+`
		format filter {
			request>headers>Mcp-Session-Id delete
			resp_headers>Mcp-Session-Id delete
		}
	}
	mcp_stdio stdioserver {
		stop_timeout 1s
	}
}
`)
	c := newRaw(t, tc)
	c.initialize()
	c.post(`{"jsonrpc":"2.0","id":1,"method":"ping"}`, http.StatusOK)
	var log []byte
	eventually(t, 10*time.Second, "three requests in the access log", func() bool {
		log, _ = os.ReadFile(logFile)
		return strings.Count(string(log), `"handled request"`) >= 3
	})
	if strings.Contains(string(log), c.id) {
		t.Errorf("the access log holds the session id:\n%s", log)
	}
}
