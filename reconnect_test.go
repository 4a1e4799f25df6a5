package mcpsse_test

// Streams cut on the wire (issue 10): real clients under node, behind a
// TCP relay that cuts their connections as a proxy's idle timeout would,
// reconnect by themselves. The TypeScript SDK gets a new session that
// works (anonymous) or its own session back by identity (basic_auth); a
// plain EventSource gets its session back by Last-Event-ID, with every
// frame it missed exactly once, or what the replay buffer still holds.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// relay is a TCP relay on 127.0.0.1 to a Caddy. It knows which of its
// connections carry a stream (the client sent "GET /sse" on them) and, on
// the test's word, cuts every connection it holds, both sides, as a
// proxy's idle timeout would; holds new stream requests until released;
// or freezes a stream once a marker has passed, so that what Caddy writes
// after it is lost in flight when the cut comes.
type relay struct {
	t         *testing.T
	ln        net.Listener
	target    string
	streamReq []byte

	mu       sync.Mutex
	conns    map[*relayConn]struct{}
	hold     chan struct{} // not nil: stream requests wait until it closes
	freezeOn []byte        // once, a stream stops forwarding after this passes
	streams  int           // stream requests seen
}

type relayConn struct {
	client, server net.Conn
	stream         atomic.Bool
	done           chan struct{}
	once           sync.Once
}

func (c *relayConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.client.Close()
		c.server.Close()
	})
}

// startRelay relays 127.0.0.1:<free port> to tc; http://<relay>/sse is the
// stream URL through it.
func startRelay(t *testing.T, tc *testCaddy) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+freePort(t))
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{t: t, ln: ln, target: strings.TrimPrefix(tc.base, "http://"),
		streamReq: []byte("GET /sse"), conns: map[*relayConn]struct{}{}}
	t.Cleanup(func() {
		ln.Close()
		r.release()
		r.cut()
	})
	go r.accept()
	return r
}

func (r *relay) url() string { return "http://" + r.ln.Addr().String() + "/sse" }

func (r *relay) accept() {
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.serve(client)
	}
}

func (r *relay) serve(client net.Conn) {
	server, err := net.DialTimeout("tcp", r.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	c := &relayConn{client: client, server: server, done: make(chan struct{})}
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.mu.Unlock()
	defer func() {
		c.close()
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
	}()
	go func() {
		defer c.close()
		r.toServer(c)
	}()
	r.toClient(c)
}

// toServer forwards what the client sends; a stream request waits while
// the relay holds them.
func (r *relay) toServer(c *relayConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			// A request line is written whole, at the start of a write:
			// HTTP/1.1 clients do not pipeline.
			if bytes.Contains(buf[:n], r.streamReq) {
				c.stream.Store(true)
				r.mu.Lock()
				r.streams++
				hold := r.hold
				r.mu.Unlock()
				if hold != nil {
					select {
					case <-hold:
					case <-c.done:
						return
					}
				}
			}
			if _, err := c.server.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// toClient forwards what Caddy sends; a stream past the freeze marker
// stops being read, so that Caddy's further writes sit in socket buffers.
func (r *relay) toClient(c *relayConn) {
	buf := make([]byte, 32<<10)
	var tail []byte // the end of the last read, for a marker split across reads
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			if _, err := c.client.Write(buf[:n]); err != nil {
				return
			}
			r.mu.Lock()
			marker := r.freezeOn
			frozen := marker != nil && c.stream.Load() && bytes.Contains(append(tail, buf[:n]...), marker)
			if frozen {
				r.freezeOn = nil
			}
			r.mu.Unlock()
			if frozen {
				<-c.done
				return
			}
			if marker != nil {
				tail = append(tail[:0], buf[max(0, n-len(marker)):n]...)
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes every connection the relay holds, both sides, and returns how
// many of them carried a stream.
func (r *relay) cut() int {
	r.mu.Lock()
	conns := make([]*relayConn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	streams := 0
	for _, c := range conns {
		if c.stream.Load() {
			streams++
		}
		c.close()
	}
	return streams
}

// holdStreams makes stream requests wait in the relay until release.
func (r *relay) holdStreams() {
	r.mu.Lock()
	if r.hold == nil {
		r.hold = make(chan struct{})
	}
	r.mu.Unlock()
}

func (r *relay) release() {
	r.mu.Lock()
	if r.hold != nil {
		close(r.hold)
		r.hold = nil
	}
	r.mu.Unlock()
}

// freezeAfter makes the next stream that forwards marker stop there.
func (r *relay) freezeAfter(marker string) {
	r.mu.Lock()
	r.freezeOn = []byte(marker)
	r.mu.Unlock()
}

func (r *relay) streamRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.streams
}

// nodeScript is a script of testdata/tsclient under node, driven through
// its stdin and read line by line: each line a tag and one JSON object.
type nodeScript struct {
	t       *testing.T
	stdin   io.WriteCloser
	lines   chan string
	stderr  *proctest.LockedBuffer
	exited  chan struct{} // closed once node has exited, with waitErr set
	waitErr error
}

func startNode(t *testing.T, script string, args ...string) *nodeScript {
	t.Helper()
	dir := filepath.Join("testdata", "tsclient")
	for _, pkg := range []string{"@modelcontextprotocol/sdk", "eventsource"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("npm package %s not installed (run scripts/test, or npm ci --prefix %s): %v", pkg, dir, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(dir, script)}, args...)...)
	n := &nodeScript{t: t, lines: make(chan string, 4096), stderr: &proctest.LockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = n.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n.stdin = stdin
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("node %s: %v", script, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			n.lines <- sc.Text()
		}
		close(n.lines)
		n.waitErr = cmd.Wait()
		close(n.exited)
	}()
	// A script still running when the test ends (one that failed, say) is
	// killed; quit is the clean way out.
	t.Cleanup(func() {
		stdin.Close()
		cancel()
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("node %s still running 10s after it was killed", script)
		}
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", script, n.stderr.String())
		}
	})
	return n
}

// say writes one command line to the script.
func (n *nodeScript) say(line string) {
	n.t.Helper()
	if _, err := io.WriteString(n.stdin, line+"\n"); err != nil {
		n.t.Fatalf("writing %q to node: %v\nstderr: %s", line, err, n.stderr.String())
	}
}

// next returns the next line's tag and JSON.
func (n *nodeScript) next(within time.Duration) (string, []byte) {
	n.t.Helper()
	select {
	case line, ok := <-n.lines:
		if !ok {
			n.t.Fatalf("node exited early\nstderr: %s", n.stderr.String())
		}
		tag, rest, _ := strings.Cut(line, " ")
		return tag, []byte(rest)
	case <-time.After(within):
		n.t.Fatalf("node printed nothing within %s\nstderr: %s", within, n.stderr.String())
	}
	panic("unreachable")
}

// expect reads the next line, which must have tag, into v.
func (n *nodeScript) expect(tag string, within time.Duration, v any) {
	n.t.Helper()
	got, data := n.next(within)
	if got != tag {
		n.t.Fatalf("node printed %s %s, want %s\nstderr: %s", got, data, tag, n.stderr.String())
	}
	if err := json.Unmarshal(data, v); err != nil {
		n.t.Fatalf("node's %s line %q: %v", tag, data, err)
	}
}

// expectCall reads the SENT and CALLED lines of a call made while the
// stream is up, in either order: SENT is printed once the POST's 202 is
// read, and the answer may come on the stream before it.
func (n *nodeScript) expectCall(within time.Duration) tsCalled {
	n.t.Helper()
	var called tsCalled
	for seen := map[string]bool{}; !seen["SENT"] || !seen["CALLED"]; {
		tag, data := n.next(within)
		switch {
		case tag == "SENT" && !seen[tag]:
		case tag == "CALLED" && !seen[tag]:
			if err := json.Unmarshal(data, &called); err != nil {
				n.t.Fatalf("node's CALLED line %q: %v", data, err)
			}
		default:
			n.t.Fatalf("node printed %s %s, want SENT and CALLED\nstderr: %s", tag, data, n.stderr.String())
		}
		seen[tag] = true
	}
	return called
}

// quit asks a reconnect.mjs script to close, and checks it exits cleanly.
func (n *nodeScript) quit() {
	n.t.Helper()
	n.say("quit")
	n.stdin.Close()
	select {
	case <-n.exited:
		if n.waitErr != nil {
			n.t.Fatalf("node: %v\nstderr: %s", n.waitErr, n.stderr.String())
		}
	case <-time.After(15 * time.Second):
		n.t.Fatal("node did not exit within 15s of quit")
	}
}

// sessionOfEndpoint is the session id an endpoint URL names.
func sessionOfEndpoint(t *testing.T, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil || u.Query().Get("session_id") == "" {
		t.Fatalf("endpoint %q names no session: %v", endpoint, err)
	}
	return u.Query().Get("session_id")
}

// waitLogs waits until at least n log lines contain msg, and returns them.
func waitLogs(t *testing.T, tc *testCaddy, msg string, n int, within time.Duration) []map[string]any {
	t.Helper()
	var lines []map[string]any
	eventually(t, within, fmt.Sprintf("%d log line(s) %q", n, msg), func() bool {
		lines = tc.logs(msg)
		return len(lines) >= n
	})
	return lines
}

type tsReady struct {
	Endpoint string `json:"endpoint"`
	Tools    int    `json:"tools"`
}

type tsCalled struct {
	Text       string `json:"text"`
	Endpoint   string `json:"endpoint"`
	Reconnects int    `json:"reconnects"`
}

// TestReconnectTypeScriptAnonymous: the TypeScript SDK's stream is cut;
// the SDK reconnects by itself after retry, without Last-Event-ID (its
// fetch wrapper drops it) and without cookies, so nothing proves its
// session: it gets a new one and goes on POSTing there without a new
// initialize. The bridge initializes the upstream for it, and tools/list
// and tools/call work.
func TestReconnectTypeScriptAnonymous(t *testing.T) {
	tc := startCaddy(t, "retry 500ms")
	r := startRelay(t, tc)
	node := startNode(t, "reconnect.mjs", r.url())

	var ready tsReady
	node.expect("READY", 30*time.Second, &ready)
	if ready.Tools != len(demoTools) {
		t.Fatalf("listed %d tools before the cut, want %d", ready.Tools, len(demoTools))
	}
	if n := r.cut(); n != 1 {
		t.Fatalf("the relay cut %d streams, want 1", n)
	}
	waitLogs(t, tc, "session detached", 1, 10*time.Second)

	node.say("reconnected")
	var again struct {
		Endpoint   string `json:"endpoint"`
		Reconnects int    `json:"reconnects"`
	}
	node.expect("RECONNECTED", 20*time.Second, &again)
	if again.Endpoint == ready.Endpoint {
		t.Fatalf("an anonymous client without Last-Event-ID or cookie got its session back (%s)", again.Endpoint)
	}
	node.say("list")
	var listed struct {
		Tools []string `json:"tools"`
	}
	node.expect("LISTED", 20*time.Second, &listed)
	checkDemoTools(t, listed.Tools)
	node.say("call after the cut")
	called := node.expectCall(20 * time.Second)
	if called.Text != "after the cut" || called.Endpoint != again.Endpoint || called.Reconnects != 1 {
		t.Errorf("echo after the reconnect: %+v, want the text back on %s after one reconnect", called, again.Endpoint)
	}
	node.quit()

	if got := r.streamRequests(); got != 2 {
		t.Errorf("%d stream requests through the relay, want 2 (the first and the reconnect)", got)
	}
	if n := len(tc.logs("session opened")); n != 2 {
		t.Errorf("%d sessions opened, want 2", n)
	}
	inits := tc.logs("initialized the upstream for a client that sent no initialize")
	if len(inits) != 1 || inits[0]["session"] != session.ShortID(sessionOfEndpoint(t, again.Endpoint)) {
		t.Errorf("bridge-initialize log lines %v, want one, for the new session", inits)
	}
	if n := len(tc.logs("session re-attached")); n != 0 {
		t.Errorf("%d re-attaches logged, want none", n)
	}
}

// TestReconnectTypeScriptAuthenticated: behind basic_auth (credentials in
// the SDK's requestInit, which it sends with the GET and every POST), the
// stream is cut and the reconnect held in the relay; meanwhile the client
// POSTs a call, which the detached session accepts and dispatches. Let
// through, the reconnect proves the session by identity (it carries
// MCP-Protocol-Version): the client finds the same endpoint, gets the
// answer to the call it posted while down, and later calls work.
func TestReconnectTypeScriptAuthenticated(t *testing.T) {
	upstream, seen := loggingUpstream(t)
	site := fmt.Sprintf(`route {
		basic_auth {
			alice %s
		}
		mcp_sse {
			{settings}
		}
		reverse_proxy {upstream} {
			rewrite /mcp
		}
	}`, bcryptHash(t, "alice-pw"))
	tc := startCaddySite(t, site, "retry 500ms", upstream)
	metric := `caddy_mcp_sse_sessions_reattached_total{via="identity"}`
	before := metricValue(t, tc, metric)
	r := startRelay(t, tc)
	auth, _ := http.NewRequest(http.MethodGet, "/", nil)
	auth.SetBasicAuth("alice", "alice-pw")
	node := startNode(t, "reconnect.mjs", r.url(), auth.Header.Get("Authorization"))

	var ready tsReady
	node.expect("READY", 30*time.Second, &ready)
	if ready.Tools != len(demoTools) {
		t.Fatalf("listed %d tools before the cut, want %d", ready.Tools, len(demoTools))
	}
	id := sessionOfEndpoint(t, ready.Endpoint)

	r.holdStreams()
	if n := r.cut(); n != 1 {
		t.Fatalf("the relay cut %d streams, want 1", n)
	}
	waitLogs(t, tc, "session detached", 1, 10*time.Second)
	code, body := adminDo(t, tc, http.MethodGet, "/mcp_sse/sessions/"+id, "")
	var info struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(body), &info); code != http.StatusOK || err != nil || info.State != "detached" {
		t.Fatalf("admin shows the cut session as %d %s, want detached", code, body)
	}

	// The call goes out while the stream is down: its POST must be taken
	// (the SDK throws on anything else) and reach the upstream.
	node.say("call while down")
	var sent struct {
		Text string `json:"text"`
	}
	node.expect("SENT", 20*time.Second, &sent)
	seen.post(t, "while down")
	eventually(t, 10*time.Second, "the reconnect held in the relay", func() bool { return r.streamRequests() == 2 })
	r.release()

	var called tsCalled
	node.expect("CALLED", 20*time.Second, &called)
	if called.Text != "while down" || called.Endpoint != ready.Endpoint || called.Reconnects != 1 {
		t.Fatalf("the call posted while down: %+v, want its answer on the same endpoint %s after one reconnect", called, ready.Endpoint)
	}
	node.say("call later")
	called = node.expectCall(20 * time.Second)
	if called.Text != "later" || called.Endpoint != ready.Endpoint {
		t.Errorf("later call: %+v", called)
	}
	node.say("list")
	var listed struct {
		Tools []string `json:"tools"`
	}
	node.expect("LISTED", 20*time.Second, &listed)
	checkDemoTools(t, listed.Tools)
	node.quit()

	re := tc.logs("session re-attached")
	if len(re) != 1 || re[0]["via"] != "identity" || re[0]["session"] != session.ShortID(id) || re[0]["identity"] != "alice" {
		t.Errorf("re-attach log lines %v, want one, via identity, for alice's session", re)
	}
	if n := len(tc.logs("session opened")); n != 1 {
		t.Errorf("%d sessions opened, want 1", n)
	}
	if n := len(tc.logs("initialized the upstream for a client that sent no initialize")); n != 0 {
		t.Errorf("the bridge initialized the upstream %d times for a client that kept its session", n)
	}
	if got := metricValue(t, tc, metric); got != before+1 {
		t.Errorf("%s went %v → %v, want +1", metric, before, got)
	}
}

// gatedBurstUpstream is the demo MCP server, except that a request with
// method "burst" is answered by n notifications (params.seq 0…n-1), each
// flushed, in one event stream, then the result. After the first half it
// waits for the gate to close (or 20 s).
func gatedBurstUpstream(t *testing.T, n int, gate <-chan struct{}) string {
	t.Helper()
	inner := demo.Handler()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if json.Unmarshal(body, &req) != nil || req.Method != "burst" {
			r.Body = io.NopCloser(bytes.NewReader(body))
			inner.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range n {
			if i == n/2 {
				select {
				case <-gate:
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Second):
				}
			}
			fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"seq\":%d}}\n\n", i)
			if rc.Flush() != nil {
				return
			}
		}
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\n\n", req.ID)
	}))
	t.Cleanup(up.Close)
	return strings.TrimPrefix(up.URL, "http://")
}

type esLine struct {
	LastEventID *string `json:"lastEventId"` // GET
	Data        string  `json:"data"`        // ENDPOINT
	Seq         int     `json:"seq"`         // SEQ
	ID          any     `json:"id"`          // ENDPOINT, SEQ: frame id; MESSAGE: JSON-RPC id
	EventID     string  `json:"eventId"`     // MESSAGE
}

// TestReconnectLastEventID: a plain EventSource client is cut in the
// middle of a burst of 1,000 notifications: the relay freezes its stream
// once notification 100 has passed, Caddy writes 400 more into the socket
// buffers, the cut loses them in flight, and the other 500 arrive while
// the session is detached. The client reconnects with Last-Event-ID and
// gets its session back; across the reconnect it receives every
// notification once, in order. With replay_buffer 10 the id is older than
// what the session holds: it still re-attaches, the log says how many
// frames were lost, and exactly those are missing, none twice.
func TestReconnectLastEventID(t *testing.T) {
	const n = 1000
	for _, tt := range []struct {
		name   string
		buffer int
	}{
		{"replay buffer holds the gap", n},
		{"replay buffer shorter than the gap", 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gate := make(chan struct{})
			tc := startCaddyWithUpstream(t, fmt.Sprintf("retry 500ms\nreplay_buffer %d", tt.buffer), gatedBurstUpstream(t, n, gate))
			metric := `caddy_mcp_sse_sessions_reattached_total{via="last_event_id"}`
			reattachedBefore := metricValue(t, tc, metric)
			r := startRelay(t, tc)
			node := startNode(t, "lastid.mjs", r.url())

			var l esLine
			node.expect("GET", 20*time.Second, &l)
			if l.LastEventID != nil {
				t.Fatalf("first GET sent Last-Event-ID %q", *l.LastEventID)
			}
			node.expect("ENDPOINT", 20*time.Second, &l)
			endpoint, firstID := l.Data, fmt.Sprint(l.ID)
			token, _, _ := strings.Cut(firstID, ".")
			if len(token) < 22 || strings.Contains(endpoint, token) {
				t.Fatalf("opening frame id %q: not <token>.<seq>, or the endpoint %s shows the token", firstID, endpoint)
			}

			out := `caddy_mcp_sse_messages_total{direction="out"}`
			outBefore := metricValue(t, tc, out)
			r.freezeAfter(`"seq":100}`)
			sse, _ := url.Parse(tc.base + "/sse")
			messages, err := sse.Parse(endpoint)
			if err != nil {
				t.Fatal(err)
			}
			code, body := postTo(t, messages.String(), `{"jsonrpc":"2.0","id":"burst","method":"burst"}`)
			if code != http.StatusAccepted {
				t.Fatalf("POST burst: %d %s", code, body)
			}

			// Read up to notification 100, which the relay let through;
			// then wait until Caddy has written the first half.
			var seqs []int
			ids := map[int]string{}
			readSeq := func(l esLine) {
				seqs = append(seqs, l.Seq)
				ids[l.Seq] = fmt.Sprint(l.ID)
				if !strings.HasPrefix(ids[l.Seq], token+".") {
					t.Fatalf("notification %d has frame id %q, not of the session's token", l.Seq, l.ID)
				}
			}
			for len(seqs) == 0 || seqs[len(seqs)-1] < 100 {
				l = esLine{}
				node.expect("SEQ", 20*time.Second, &l)
				readSeq(l)
			}
			eventually(t, 20*time.Second, "Caddy wrote the first half of the burst", func() bool {
				return metricValue(t, tc, out)-outBefore >= n/2
			})
			if n := r.cut(); n != 1 {
				t.Fatalf("the relay cut %d streams, want 1", n)
			}
			waitLogs(t, tc, "session detached", 1, 10*time.Second)
			close(gate) // the second half arrives while the session is detached

			// Whatever of the frozen stream reached the client before the
			// cut comes first; then the reconnect, which must name the
			// last frame the client saw.
			var reconnectID string
			for reconnectID == "" {
				tag, data := node.next(20 * time.Second)
				l = esLine{}
				if err := json.Unmarshal(data, &l); err != nil {
					t.Fatalf("node printed %s %q", tag, data)
				}
				switch tag {
				case "SEQ":
					readSeq(l)
				case "ERROR":
				case "GET":
					if l.LastEventID == nil {
						t.Fatal("the EventSource reconnected without Last-Event-ID")
					}
					reconnectID = *l.LastEventID
				default:
					t.Fatalf("before the reconnect, node printed %s %s", tag, data)
				}
			}
			cutAt := seqs[len(seqs)-1]
			if want := ids[cutAt]; reconnectID != want {
				t.Fatalf("reconnected with Last-Event-ID %q, want %q (notification %d's)", reconnectID, want, cutAt)
			}
			if cutAt >= n/2-1 {
				t.Fatalf("the client saw notification %d before the cut: nothing was lost in flight", cutAt)
			}
			l = esLine{}
			node.expect("ENDPOINT", 20*time.Second, &l)
			if l.Data != endpoint {
				t.Fatalf("re-attached with endpoint %s, want the same %s", l.Data, endpoint)
			}
			// The opening frame names the same position under a new token:
			// the one the client proved itself with is spent.
			oldToken, seenSeq, _ := strings.Cut(reconnectID, ".")
			newToken, openSeq, _ := strings.Cut(fmt.Sprint(l.ID), ".")
			if openSeq != seenSeq || newToken == oldToken || len(newToken) < 22 {
				t.Errorf("the re-attached stream's opening frame id is %v, want a new token and the Last-Event-ID's position (%s)", l.ID, reconnectID)
			}
			token = newToken
			for {
				tag, data := node.next(20 * time.Second)
				l = esLine{}
				if err := json.Unmarshal(data, &l); err != nil {
					t.Fatalf("node printed %s %q", tag, data)
				}
				if tag == "MESSAGE" && l.ID == "burst" {
					break
				}
				if tag != "SEQ" {
					t.Fatalf("after the re-attach, node printed %s %s", tag, data)
				}
				readSeq(l)
			}

			// Every notification once, in order, but for what the log
			// says was lost.
			var lost int
			re := tc.logs("session re-attached")
			if len(re) != 1 || re[0]["via"] != "last_event_id" {
				t.Fatalf("re-attach log lines %v, want one, via last_event_id", re)
			}
			if v, ok := re[0]["lost"].(float64); ok {
				lost = int(v)
			}
			if tt.buffer >= n && lost != 0 {
				t.Errorf("the log says %d frames were lost, with a buffer that held them all", lost)
			}
			if tt.buffer < n {
				if lost == 0 || re[0]["level"] != "warn" || !strings.Contains(fmt.Sprint(re[0]["msg"]), "no longer held") {
					t.Fatalf("re-attach log %v, want a warning with the count lost", re[0])
				}
			}
			var want []int
			for i := range n {
				if i <= cutAt || i > cutAt+lost {
					want = append(want, i)
				}
			}
			if !slices.Equal(seqs, want) {
				t.Errorf("received %d notifications, want %d: 0…%d, then %d…%d (%d lost)\n%s",
					len(seqs), len(want), cutAt, cutAt+lost+1, n-1, lost, describeSeqs(seqs))
			}
			if got := metricValue(t, tc, metric); got != reattachedBefore+1 {
				t.Errorf("%s went %v → %v, want +1", metric, reattachedBefore, got)
			}
			if n := len(tc.logs("session opened")); n != 1 {
				t.Errorf("%d sessions opened, want 1", n)
			}
			t.Logf("cut after notification %d; %d lost; %d received", cutAt, lost, len(seqs))
		})
	}
}

// describeSeqs shows where a sequence of notifications jumps or repeats.
func describeSeqs(seqs []int) string {
	var b strings.Builder
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			fmt.Fprintf(&b, "after %d (#%d) came %d\n", seqs[i-1], i-1, seqs[i])
		}
	}
	return b.String()
}
