package mcpsse_test

// Sessions that outlive their streams (issue 10): re-attaching by
// Last-Event-ID and by cookie, what proves nothing, expiry, and the
// bridge's own initialize.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// metricValue reads one sample off Caddy's metrics endpoint; absent is 0.
func metricValue(t *testing.T, tc *testCaddy, name string) float64 {
	t.Helper()
	_, body := adminDo(t, tc, "GET", "/metrics", "")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	return 0
}

// token is the resume token of a raw client's session, read off its
// opening frame's id.
func (c *rawClient) token() string {
	c.t.Helper()
	tok, seq, ok := strings.Cut(c.opening.ID, ".")
	if !ok || seq == "" || len(tok) < 22 {
		c.t.Fatalf("opening frame id %q is not <token>.<seq>", c.opening.ID)
	}
	return tok
}

// waitDetached waits until the session's close of stream has been seen.
func waitDetached(t *testing.T, tc *testCaddy, n int) {
	t.Helper()
	eventually(t, 10*time.Second, "the session detached", func() bool {
		return len(tc.logs("session detached")) >= n
	})
}

// TestResumeByLastEventID: a GET with the Last-Event-ID of a live stream
// takes the session over: the same endpoint first, then every frame after
// that id with its own id, once; the old stream ends; calls go on.
func TestResumeByLastEventID(t *testing.T) {
	tc := startCaddy(t, "")
	before := metricValue(t, tc, `caddy_mcp_sse_sessions_reattached_total{via="last_event_id"}`)
	c1 := tc.openStream(t)
	c1.initialize()
	c1.send(`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"text":"first"}}}`)
	ev := c1.messageEvent(10 * time.Second)
	if !strings.Contains(string(ev.Data), `"id":"a"`) {
		t.Fatalf("echo answered %s", ev.Data)
	}
	// Say the client saw every frame before the echo answer: that answer
	// must come again, once, with its own id.
	tok, seq, _ := strings.Cut(ev.ID, ".")
	var n int
	if _, err := fmt.Sscan(seq, &n); err != nil || tok != c1.token() || n < 2 {
		t.Fatalf("the echo answer's frame id %q is not <token>.<seq>", ev.ID)
	}
	initID := fmt.Sprintf("%s.%d", tok, n-1)
	c2 := tc.openStreamWith(t, http.Header{"Last-Event-Id": {initID}})
	if c2.endpoint != c1.endpoint || c2.opening.ID != fmt.Sprintf("%s.%d", c2.token(), n-1) || c2.token() == tok {
		t.Fatalf("re-attached with endpoint %s id %s, want %s and id <a new token>.%d", c2.endpoint, c2.opening.ID, c1.endpoint, n-1)
	}
	again := c2.message(10 * time.Second)
	if string(again.ID) != `"a"` {
		t.Fatalf("first frame replayed: %+v, want the echo answer", again)
	}
	c2.expectClosedOld(c1)
	c2.send(`{"jsonrpc":"2.0","id":"b","method":"ping"}`)
	if m := c2.message(10 * time.Second); string(m.ID) != `"b"` {
		t.Fatalf("after the take-over: %+v, want the ping's answer (no duplicate before it)", m)
	}
	// The id it proved itself with is spent: it travelled in a request
	// header, which access logs record. Whoever reads it there gets a
	// session of their own, and the client keeps its stream.
	thief := tc.openStreamWith(t, http.Header{"Last-Event-Id": {initID}})
	if thief.endpoint == c1.endpoint {
		t.Fatal("a spent Last-Event-ID took the session over again")
	}
	thief.close()
	if got := metricValue(t, tc, `caddy_mcp_sse_sessions_reattached_total{via="last_event_id"}`); got != before+1 {
		t.Errorf("reattached{via=last_event_id} went %v → %v, want +1", before, got)
	}
	code, body := adminDo(t, tc, "GET", "/mcp_sse/sessions", "")
	var list struct {
		Sessions []map[string]any `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil {
		t.Fatalf("admin sessions: %d %s", code, body)
	}
	var mine map[string]any
	for _, s := range list.Sessions {
		if strings.HasSuffix(c1.endpoint, fmt.Sprint(s["id"])) {
			mine = s
		}
	}
	if mine == nil || mine["state"] != "streaming" || mine["reattaches"] != float64(1) {
		t.Errorf("admin shows %v, want the session streaming, re-attached once", mine)
	}
	if strings.Contains(body, tok) || strings.Contains(body, c2.token()) {
		t.Error("the admin API shows a resume token")
	}
}

// messageEvent returns the next message frame, skipping keepalives.
func (c *rawClient) messageEvent(within time.Duration) sse.Event {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if ev := c.next(time.Until(deadline)); ev.Name == sse.EventMessage {
			return ev
		}
	}
}

// expectClosedOld waits until old's stream has ended.
func (c *rawClient) expectClosedOld(old *rawClient) {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-old.events:
			if !ok {
				return
			}
		case <-deadline:
			c.t.Fatal("the taken-over stream is still open after 10s")
		}
	}
}

// TestResumeByCookie: a client that keeps cookies (net/http/cookiejar)
// and is cut gets its session back on its next GET, with the answer to
// the call it posted while away.
func TestResumeByCookie(t *testing.T) {
	tc := startCaddy(t, "")
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar}
	c1 := tc.openStreamVia(t, client, nil)
	var cookie *http.Cookie
	for _, ck := range c1.resp.Cookies() {
		if ck.Name == "mcp_sse_resume" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/sse" || cookie.Secure {
		t.Fatalf("resume cookie %+v, want HttpOnly, SameSite=Strict, Path=/sse, not Secure on http", cookie)
	}
	if cookie.Value != c1.token() || strings.Contains(c1.endpoint, cookie.Value) {
		t.Fatal("the cookie does not carry the resume token, or the endpoint shows it")
	}
	c1.initialize()
	c1.close()
	waitDetached(t, tc, 1)
	code, body := postTo(t, c1.endpoint, `{"jsonrpc":"2.0","id":"away","method":"tools/call","params":{"name":"echo","arguments":{"text":"while away"}}}`)
	if code != http.StatusAccepted {
		t.Fatalf("POST to a detached session: %d %s", code, body)
	}
	c2 := tc.openStreamVia(t, client, nil)
	if c2.endpoint != c1.endpoint {
		t.Fatalf("re-attached by cookie to %s, want %s", c2.endpoint, c1.endpoint)
	}
	// The re-attach gave the session a new token, and the jar the cookie
	// that carries it.
	renewed := false
	for _, ck := range c2.resp.Cookies() {
		renewed = renewed || (ck.Name == "mcp_sse_resume" && ck.Value == c2.token() && ck.Value != cookie.Value)
	}
	if !renewed {
		t.Error("the re-attached stream did not set a cookie with the new token")
	}
	if m := c2.message(10 * time.Second); string(m.ID) != `"away"` || toolText(t, m) != "while away" {
		t.Fatalf("first message after re-attaching: %+v", m)
	}
	c2.send(`{"jsonrpc":"2.0","id":"later","method":"ping"}`)
	if m := c2.message(10 * time.Second); string(m.ID) != `"later"` {
		t.Fatalf("later call: %+v", m)
	}
	if n := len(tc.logs("session re-attached")); n != 1 {
		t.Errorf("%d re-attach log lines, want 1", n)
	}
}

// TestResumeRefusals: what does not prove a session gets a new one and
// nothing of the old: another identity's cookie or Last-Event-ID, a
// malformed Last-Event-ID, one or a cookie made of the session id (which
// every POST URL shows) without the resume token, an id the session never
// gave, and the token of a session whose window has passed.
func TestResumeRefusals(t *testing.T) {
	upstream, _ := loggingUpstream(t)
	site := fmt.Sprintf(`route {
		basic_auth {
			alice %s
			bob %s
		}
		mcp_sse {
			{settings}
		}
		reverse_proxy {upstream} {
			rewrite /mcp
		}
	}`, bcryptHash(t, "alice-pw"), bcryptHash(t, "bob-pw"))
	tc := startCaddySite(t, site, "resume_window 3s", upstream)
	as := func(user string) http.Header {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(user, user+"-pw")
		return r.Header
	}
	with := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		h.Set(k, v)
		return h
	}

	victim := tc.openStreamWith(t, as("alice"))
	victim.initialize()
	victim.send(`{"jsonrpc":"2.0","id":"secret","method":"tools/call","params":{"name":"echo","arguments":{"text":"alice's secret"}}}`)
	victim.message(10 * time.Second)
	token := victim.token()
	sessionID := victim.endpoint[strings.Index(victim.endpoint, "session_id=")+len("session_id="):]
	victim.close()
	waitDetached(t, tc, 1)
	// The victim's session holds alice's answer: a replay from 0 would
	// send it again, which no refused request may get.

	refused := func(name string, header http.Header) {
		t.Helper()
		c := tc.openStreamWith(t, header)
		if c.endpoint == victim.endpoint {
			t.Errorf("%s: re-attached to the victim's session", name)
			return
		}
		if strings.HasPrefix(c.opening.ID, token) {
			t.Errorf("%s: the new stream carries the victim's token", name)
		}
		c.send(`{"jsonrpc":"2.0","id":"probe","method":"ping"}`)
		if m := c.message(10 * time.Second); string(m.ID) != `"probe"` {
			t.Errorf("%s: the new session's first message is %+v, want the probe's answer", name, m)
		}
		c.close()
	}
	refused("bob with alice's cookie", with(as("bob"), "Cookie", "mcp_sse_resume="+token))
	refused("bob with alice's Last-Event-ID", with(as("bob"), "Last-Event-ID", token+".0"))
	refused("a malformed Last-Event-ID", with(as("alice"), "Last-Event-ID", "no-dot-here"))
	refused("a Last-Event-ID of the session id", with(as("alice"), "Last-Event-ID", sessionID+".0"))
	refused("a cookie of the session id", with(as("alice"), "Cookie", "mcp_sse_resume="+sessionID))
	refused("an id never given", with(as("alice"), "Last-Event-ID", token+".99"))

	expiredBefore := metricValue(t, tc, `caddy_mcp_sse_sessions_closed_total{reason="resume_expired"}`)
	eventually(t, 15*time.Second, "the victim's session expired", func() bool {
		for _, l := range tc.logs("session closed") {
			if l["reason"] == "resume_expired" && strings.HasPrefix(sessionID, strings.TrimSuffix(fmt.Sprint(l["session"]), "…")) {
				return true
			}
		}
		return false
	})
	refused("the token of an expired session", with(as("alice"), "Last-Event-ID", token+".0"))
	if got := metricValue(t, tc, `caddy_mcp_sse_sessions_closed_total{reason="resume_expired"}`); got < expiredBefore+1 {
		t.Errorf("closed{reason=resume_expired} went %v → %v", expiredBefore, got)
	}
	if n := len(tc.logs("session re-attached")); n != 0 {
		t.Errorf("%d re-attaches, want none", n)
	}
}

// TestBridgeInitializes: a client that skips initialize (as one that
// reconnected to a new session does) is served: the bridge initializes
// the upstream itself, off the client's stream. A client that initializes
// an initialized session again gets a fresh upstream session, the old one
// ended.
func TestBridgeInitializes(t *testing.T) {
	upstream, deletes := countingUpstream(t, http.MethodDelete)
	tc := startCaddyWithUpstream(t, "", upstream)
	c := tc.openStream(t)
	c.send(`{"jsonrpc":"2.0","id":"list","method":"tools/list"}`)
	m := c.message(10 * time.Second)
	if string(m.ID) != `"list"` || m.Error != nil || !strings.Contains(string(m.Result), `"echo"`) {
		t.Fatalf("tools/list on a session never initialized: %+v", m)
	}
	if n := len(tc.logs("initialized the upstream for a client that sent no initialize")); n != 1 {
		t.Errorf("%d bridge-initialize log lines, want 1", n)
	}
	c.initialize() // again, on an initialized session
	eventually(t, 10*time.Second, "the old upstream session's DELETE", func() bool { return deletes.Load() == 1 })
	c.send(`{"jsonrpc":"2.0","id":"after","method":"tools/call","params":{"name":"echo","arguments":{"text":"fresh"}}}`)
	if m := c.message(10 * time.Second); string(m.ID) != `"after"` || toolText(t, m) != "fresh" {
		t.Fatalf("call on the fresh upstream session: %+v", m)
	}
}
