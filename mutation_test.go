package mcpsse_test

// Tests that kill mutations the rest of the suite let through: each names
// the change to the code it catches.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

// TestScopeTellsNamedSitesApart: two named sites on one address are two
// scopes: a session opened at one is unknown at the other. (Catches a
// scope that leaves the host matchers out.)
func TestScopeTellsNamedSitesApart(t *testing.T) {
	up, seen := loggingUpstream(t)
	port, adminPort := freePort(t), freePort(t)
	loadCaddyfile(t, strings.NewReplacer("{admin}", adminPort, "{port}", port, "{up}", up).Replace(`{
	admin 127.0.0.1:{admin}
	persist_config off
	auto_https off
}

http://a.test:{port} {
	bind 127.0.0.1
	mcp_sse {
		resume_window off
	}
	reverse_proxy {up} {
		rewrite /mcp
	}
}

http://b.test:{port} {
	bind 127.0.0.1
	mcp_sse {
		resume_window off
	}
	reverse_proxy {up} {
		rewrite /mcp
	}
}
`))
	base := "http://127.0.0.1:" + port
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/sse", nil)
	req.Host = "a.test:" + port
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse at a.test: %d", resp.StatusCode)
	}
	endpoint := readEndpoint(t, resp)

	post := func(host, body string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/"+strings.TrimPrefix(endpoint, "/"), strings.NewReader(body))
		req.Host = host + ":" + port
		req.Header.Set("Content-Type", "application/json")
		return send(t, req)
	}
	if code, body := post("b.test", `{"jsonrpc":"2.0","id":"cross","method":"ping"}`); code != http.StatusNotFound {
		t.Errorf("POST of a.test's session at b.test: %d %s, want 404", code, body)
	}
	if code, body := post("a.test", `{"jsonrpc":"2.0","id":"own","method":"ping"}`); code != http.StatusAccepted {
		t.Fatalf("POST at its own site: %d %s, want 202", code, body)
	}
	seen.post(t, `"id":"own"`)
	seen.mu.Lock()
	defer seen.mu.Unlock()
	for _, r := range seen.seen {
		if strings.Contains(r.body, `"cross"`) {
			t.Error("the upstream received the message posted at the other site")
		}
	}
}

// TestMaxInflightBoundsResponses: responses to the server's requests
// count apart from requests, but are bounded by max_inflight too: with two
// responses held by the upstream, a third gets 429 while a request still
// goes through. (Catches responses admitted without being counted.)
func TestMaxInflightBoundsResponses(t *testing.T) {
	release := make(chan struct{})
	var held atomic.Int32
	inner := demo.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost && bytes.Contains(body, []byte(`"result"`)) {
			held.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusAccepted)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	tc := startCaddyWithUpstream(t, "max_inflight 2", strings.TrimPrefix(up.URL, "http://"))
	released := false
	free := func() {
		if !released {
			released = true
			close(release)
		}
	}
	t.Cleanup(free) // before Caddy stops

	c := tc.openStream(t)
	answer := func(id string) string { return `{"jsonrpc":"2.0","id":"` + id + `","result":{}}` }
	c.send(answer("r1"))
	c.send(answer("r2"))
	resp, err := testClient.Post(c.endpoint, "application/json", strings.NewReader(answer("r3")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "max_inflight") {
		t.Fatalf("a third response while two are held: %d Retry-After %q %s; want 429 naming max_inflight", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Requests have a limit of their own.
	c.send(`{"jsonrpc":"2.0","id":"p","method":"ping"}`)
	free()
	eventually(t, 10*time.Second, "room for a response again", func() bool {
		code, body := c.post(answer("r4"))
		if code != http.StatusAccepted && code != http.StatusTooManyRequests {
			t.Fatalf("response after the held ones were let go: %d %s", code, body)
		}
		return code == http.StatusAccepted
	})
}

// TestPendingBytesGivenBackOnce: the bytes of a body are given back once
// when its dispatch ends, not more: after a large call has ended, two
// large calls together, from two clients, are still over
// max_pending_bytes. (Catches a release that runs twice.)
func TestPendingBytesGivenBackOnce(t *testing.T) {
	tc := startCaddy(t, "max_pending_bytes 1MiB\n\t\tmax_message_size 1MiB")
	c := tc.openStream(t)
	c.initialize()
	pad := strings.Repeat("a", 600<<10)
	slow := func(id string, ms int) string {
		return `{"jsonrpc":"2.0","id":"` + id + `","method":"tools/call","params":{"name":"slow","arguments":{"steps":1,"delay_ms":` +
			strconv.Itoa(ms) + `},"pad":"` + pad + `"}}`
	}
	c.send(slow("first", 1))
	if m := c.message(15 * time.Second); string(m.ID) != `"first"` || m.Error != nil {
		t.Fatalf("first large call: %+v", m)
	}
	// Its dispatch ends just after its answer is out: wait until its
	// bytes are back (a second large call is taken), then hold it.
	eventually(t, 10*time.Second, "the first call's bytes given back", func() bool {
		code, body := c.post(slow("held", 3000))
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Fatalf("second large call: %d %s", code, body)
		}
		return code == http.StatusAccepted
	})
	// From another client address, whose share is its own: the
	// process-wide budget alone refuses it.
	other := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")},
	}).DialContext}}
	b := tc.openStreamVia(t, other, nil)
	if code, body := postVia(t, other, b.endpoint, slow("over", 1)); code != http.StatusServiceUnavailable {
		t.Errorf("a large call while another is held (1.2 MB of a 1 MiB budget): %d %.200s, want 503", code, body)
	}
	if m := c.message(15 * time.Second); string(m.ID) != `"held"` || m.Error != nil {
		t.Fatalf("held call: %+v", m)
	}
}

// TestCookieSparesLiveSession: a resume cookie re-attaches only a session
// no stream holds: a second GET with it while the first stream is live
// (a second tab) gets a session of its own, and the first stream goes
// on. (Catches a cookie re-attach that skips the detached check.)
func TestCookieSparesLiveSession(t *testing.T) {
	tc := startCaddy(t, "")
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar}
	c1 := tc.openStreamVia(t, client, nil)
	if len(c1.resp.Cookies()) == 0 {
		t.Fatal("the stream set no cookie")
	}
	c2 := tc.openStreamVia(t, client, nil)
	if c2.endpoint == c1.endpoint {
		t.Fatalf("a second GET with the cookie of a live session took it over (%s)", c2.endpoint)
	}
	c1.send(`{"jsonrpc":"2.0","id":"still","method":"ping"}`)
	if m := c1.message(10 * time.Second); string(m.ID) != `"still"` {
		t.Fatalf("the first stream after a second tab opened: %+v", m)
	}
	if n := len(tc.logs("session re-attached")); n != 0 {
		t.Errorf("%d re-attaches, want none", n)
	}
}

// TestBridgeInitializesOnce: the bridge initializes the upstream on a
// client's behalf once per session: when that fails, the client's later
// messages go as they are, not each after another initialize. (Catches
// the once-per-session claim removed.)
func TestBridgeInitializesOnce(t *testing.T) {
	var inits atomic.Int32
	inner := demo.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"method":"initialize"`)) {
			inits.Add(1)
			http.Error(w, "initialize refused", http.StatusInternalServerError)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	tc := startCaddyWithUpstream(t, "", strings.TrimPrefix(up.URL, "http://"))
	c := tc.openStream(t)
	for _, id := range []string{"l1", "l2", "l3"} {
		c.send(`{"jsonrpc":"2.0","id":"` + id + `","method":"tools/list"}`)
		if m := c.message(10 * time.Second); string(m.ID) != `"`+id+`"` {
			t.Fatalf("answer to %s: %+v", id, m)
		}
	}
	if n := inits.Load(); n != 1 {
		t.Errorf("the upstream got %d initialize requests for one session, want 1", n)
	}
}

// TestForwardedHeadersReachUpstream: the X-Forwarded-* a client sends
// reach the upstream request of its message as reverse_proxy would treat
// them on the POST itself: extended when the client is a proxy Caddy
// trusts (trusted_proxies), replaced otherwise, so that a client cannot
// claim another address. (Catches a dispatch that does not carry them
// on: reverse_proxy then sees none, and a trusted proxy's are lost.)
func TestForwardedHeadersReachUpstream(t *testing.T) {
	for _, tc := range []struct {
		name, servers                string
		wantFor, wantProto, wantHost string // "" for wantHost: the POST's own Host
	}{
		{"trusted proxy", "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}", "203.0.113.7, 127.0.0.1", "https", "mcp.example.com"},
		{"untrusted client", "", "127.0.0.1", "http", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := recordingUpstream(t, nil)
			port := freePort(t)
			loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	%s
}

http://127.0.0.1:%s {
	bind 127.0.0.1
	mcp_sse {
		resume_window off
	}
	reverse_proxy %s {
		rewrite /mcp
	}
}
`, tc.servers, port, rec.addr))
			caddy := &testCaddy{t: t, base: "http://127.0.0.1:" + port}
			c := caddy.openStreamWith(t, http.Header{
				"X-Forwarded-For":   {"203.0.113.7"},
				"X-Forwarded-Proto": {"https"},
				"X-Forwarded-Host":  {"mcp.example.com"},
			})
			c.initialize()
			c.send(`{"jsonrpc":"2.0","id":"fwd","method":"tools/call","params":{"name":"echo","arguments":{"text":"fwd"}}}`)
			if m := c.message(10 * time.Second); string(m.ID) != `"fwd"` || toolText(t, m) != "fwd" {
				t.Fatalf("answer to the call: %+v", m)
			}
			calls := rec.received("tools/call")
			if len(calls) != 1 {
				t.Fatalf("the upstream got %d tools/call, want 1", len(calls))
			}
			h := calls[0].Header
			wantHost := tc.wantHost
			if wantHost == "" {
				wantHost = "127.0.0.1:" + port
			}
			if got := strings.Join(h.Values("X-Forwarded-For"), ", "); got != tc.wantFor {
				t.Errorf("X-Forwarded-For upstream: %q, want %q", got, tc.wantFor)
			}
			if got := h.Get("X-Forwarded-Proto"); got != tc.wantProto {
				t.Errorf("X-Forwarded-Proto upstream: %q, want %q", got, tc.wantProto)
			}
			if got := h.Get("X-Forwarded-Host"); got != wantHost {
				t.Errorf("X-Forwarded-Host upstream: %q, want %q", got, wantHost)
			}
		})
	}
}

// TestSessionEndCancelsARequestAwaitingItsHeader: a session that ends
// while its request waits on the upstream's reply header does not cut
// that request then (the race resend.go describes), but once the header
// is in: the streamed reply is cut and the upstream's request cancelled,
// not left to run until upstream_timeout holding a worker, a connection
// and the upstream's work. (Catches a cancellation the gate held back
// and then dropped: cancelgate.go.)
func TestSessionEndCancelsARequestAwaitingItsHeader(t *testing.T) {
	started := make(chan struct{}, 1)
	header := make(chan struct{})
	sendHeader := sync.OnceFunc(func() { close(header) })
	cancelled, early := make(chan struct{}, 1), make(chan struct{}, 1)
	up := scriptedUpstream(t, 0, func(w http.ResponseWriter, r *http.Request, id json.RawMessage, method string) {
		if method != "hang" {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		started <- struct{}{}
		// The header is held until the session has ended.
		select {
		case <-header:
		case <-r.Context().Done():
			early <- struct{}{}
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(time.Minute):
		}
	})
	t.Cleanup(sendHeader) // before the upstream closes
	tc := startCaddyWithUpstream(t, "resume_window off\n\t\tupstream_timeout 5m", up)
	c := tc.openStream(t)
	c.initialize()
	c.send(`{"jsonrpc":"2.0","id":5,"method":"hang"}`)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
	c.close() // resume_window off: the session ends with its stream
	// Its end is logged once its dispatches were told to cancel.
	tc.closedReason(c, 10*time.Second)
	sendHeader()
	select {
	case <-cancelled:
	case <-early:
		t.Fatal("the request was cancelled upstream before its reply header came (the gate should hold it back)")
	case <-time.After(10 * time.Second):
		t.Fatal("the session ended before its request's reply header came, and the request upstream still runs after it (it would until upstream_timeout)")
	}
}
