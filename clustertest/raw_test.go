package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// httpClient is for the tests' own requests: a connection pool big enough
// for the concurrent sessions, and a deadline on every request.
var httpClient = &http.Client{
	Timeout: 15 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	},
}

// streamClient is for streams: no overall deadline (a stream stays open),
// its own connections.
var streamClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// rpcMessage is a JSON-RPC message as read off a stream.
type rpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// id is the message's id as a string ("" for none; a JSON string's
// content, else its JSON).
func (m rpcMessage) id() string {
	var s string
	if json.Unmarshal(m.ID, &s) == nil {
		return s
	}
	return string(m.ID)
}

// text is the first text content of a tools/call result, or "".
func (m rpcMessage) text() string {
	var r struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if json.Unmarshal(m.Result, &r) != nil || len(r.Content) == 0 {
		return ""
	}
	return r.Content[0].Text
}

// rawSession is an SSE stream read off the wire, for what the SDKs hide:
// every message frame, in order, duplicates included, and the stream's
// end.
type rawSession struct {
	ID       string
	endpoint *url.URL // the message URL, as the endpoint event gave it
	header   http.Header
	cancel   context.CancelFunc

	cookies []*http.Cookie // what the GET's response set
	opening string         // the endpoint frame's id

	mu      sync.Mutex
	msgs    []rpcMessage
	frames  []string // msgs[i]'s frame id
	lastID  string   // the last frame id the stream carried
	ended   bool
	endErr  error
	changed chan struct{} // closed, and replaced, at each new message and at the end
}

// openRaw opens a stream at base+"/sse" with header, and returns once its
// endpoint event has come. The stream is closed when the test ends.
func openRaw(t testing.TB, base string, header http.Header) *rawSession {
	t.Helper()
	s, code, body := tryOpenRaw(t, base, header)
	if s == nil {
		t.Fatalf("GET %s/sse: %d %s", base, code, body)
	}
	return s
}

// openWait bounds the wait for a stream's response and its endpoint event.
const openWait = 20 * time.Second

// tryOpenRaw is openRaw that returns the status and body of a GET that
// did not open a stream (nil session) instead of failing on it. A
// transport error or a stream without an endpoint event within openWait
// fails the test.
func tryOpenRaw(t testing.TB, base string, header http.Header) (*rawSession, int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/sse", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := streamClient.Do(req)
		got <- result{resp, err}
	}()
	var resp *http.Response
	select {
	case r := <-got:
		if r.err != nil {
			cancel()
			t.Fatalf("GET %s/sse: %v", base, r.err)
		}
		resp = r.resp
	case <-time.After(openWait):
		cancel()
		t.Fatalf("GET %s/sse: no response headers within %s", base, openWait)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode, string(b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s/sse: 200 with Content-Type %q", base, ct)
	}
	s := &rawSession{header: header, cancel: cancel, changed: make(chan struct{}), cookies: resp.Cookies()}
	endpoint := make(chan sse.Event, 1)
	go s.read(resp.Body, endpoint)
	t.Cleanup(s.close)
	select {
	case ev := <-endpoint:
		e := string(ev.Data)
		s.opening = ev.ID
		sseURL, _ := url.Parse(base + "/sse")
		u, err := sseURL.Parse(e)
		if err != nil || u.Query().Get("session_id") == "" {
			s.close()
			t.Fatalf("endpoint event %q names no session: %v", e, err)
		}
		s.endpoint, s.ID = u, u.Query().Get("session_id")
	case <-time.After(openWait):
		s.close()
		t.Fatalf("GET %s/sse: no endpoint event within %s", base, openWait)
	}
	return s, http.StatusOK, ""
}

// read parses the stream until it ends.
func (s *rawSession) read(body io.ReadCloser, endpoint chan<- sse.Event) {
	defer body.Close()
	var p sse.Parser
	buf := make([]byte, 32<<10)
	sentEndpoint := false
	for {
		n, err := body.Read(buf)
		perr := p.Feed(buf[:n], func(ev sse.Event) error {
			if ev.ID != "" {
				s.mu.Lock()
				s.lastID = ev.ID
				s.mu.Unlock()
			}
			switch ev.Name {
			case sse.EventEndpoint:
				if !sentEndpoint {
					sentEndpoint = true
					endpoint <- ev
				}
			case sse.EventMessage, "":
				var m rpcMessage
				if err := json.Unmarshal(ev.Data, &m); err != nil {
					return fmt.Errorf("message frame %q: %w", ev.Data, err)
				}
				s.mu.Lock()
				s.msgs = append(s.msgs, m)
				s.frames = append(s.frames, ev.ID)
				s.notify()
				s.mu.Unlock()
			}
			return nil
		})
		if perr != nil || err != nil {
			if perr != nil {
				err = perr
			}
			s.mu.Lock()
			s.ended, s.endErr = true, err
			s.notify()
			s.mu.Unlock()
			return
		}
	}
}

// framesOf lists the frame ids of the messages match holds for.
func (s *rawSession) framesOf(match func(rpcMessage) bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for i, m := range s.msgs {
		if match(m) {
			ids = append(ids, s.frames[i])
		}
	}
	return ids
}

// lastEventID is the id of the last frame the stream carried: what an
// EventSource sends back as Last-Event-ID.
func (s *rawSession) lastEventID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID
}

// cookie is the value of the cookie name the GET's response set, or "".
func (s *rawSession) cookie(name string) string {
	for _, c := range s.cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// notify wakes the waiters; s.mu is held.
func (s *rawSession) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *rawSession) close() { s.cancel() }

// messageURL is the message URL at base (another instance, the
// balancer), or as the endpoint gave it when base is "".
func (s *rawSession) messageURL(base string) string {
	if base == "" {
		return s.endpoint.String()
	}
	u, _ := url.Parse(base)
	m := *s.endpoint
	m.Scheme, m.Host = u.Scheme, u.Host
	return m.String()
}

// post POSTs body to the session's message URL at base (see messageURL)
// and returns the status and body; a transport error, or no answer
// within 10 s, is an error.
func (s *rawSession) post(base, body string) (int, string, error) {
	return postJSON(s.messageURL(base), s.header, body)
}

// mustPost is post, failing the test unless the answer is 202.
func (s *rawSession) mustPost(t testing.TB, base, body string) {
	t.Helper()
	code, reply, err := s.post(base, body)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("session %s: POST %s: %d %s %v", s.ID, s.messageURL(base), code, reply, err)
	}
}

func postJSON(target string, header http.Header, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), err
}

// messages is every message the stream has carried so far.
func (s *rawSession) messages() []rpcMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rpcMessage(nil), s.msgs...)
}

// waitMessage waits for a message for which match holds, from the stream's
// start, and returns it; it fails the test after within, or if the stream
// ends first.
func (s *rawSession) waitMessage(t testing.TB, within time.Duration, what string, match func(rpcMessage) bool) rpcMessage {
	t.Helper()
	deadline := time.After(within)
	for {
		s.mu.Lock()
		for _, m := range s.msgs {
			if match(m) {
				s.mu.Unlock()
				return m
			}
		}
		ended, endErr, changed := s.ended, s.endErr, s.changed
		s.mu.Unlock()
		if ended {
			t.Fatalf("session %s: the stream ended (%v) before %s", s.ID, endErr, what)
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("session %s: no %s within %s", s.ID, what, within)
		}
	}
}

// waitAnswer waits for the response to request id.
func (s *rawSession) waitAnswer(t testing.TB, within time.Duration, id string) rpcMessage {
	t.Helper()
	return s.waitMessage(t, within, "answer to "+id, func(m rpcMessage) bool {
		return m.Method == "" && m.id() == id
	})
}

// waitEnd waits until the stream has ended, and fails the test if it has
// not within.
func (s *rawSession) waitEnd(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		s.mu.Lock()
		ended, changed := s.ended, s.changed
		s.mu.Unlock()
		if ended {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("session %s: the stream still open %s later", s.ID, within)
		}
	}
}

// hasEnded reports whether the stream has ended.
func (s *rawSession) hasEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// initialize runs the MCP handshake through base: initialize, its answer,
// notifications/initialized.
func (s *rawSession) initialize(t testing.TB, base string) {
	t.Helper()
	s.mustPost(t, base, `{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"clustertest-raw","version":"1"}}}`)
	m := s.waitAnswer(t, 15*time.Second, "init")
	if m.Error != nil || !bytes.Contains(m.Result, []byte(`"mcp-sse-demo"`)) {
		t.Fatalf("session %s: initialize answered %s %+v", s.ID, m.Result, m.Error)
	}
	s.mustPost(t, base, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// echoRequest is a tools/call echo request with id and text.
func echoRequest(id, text string) string {
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": id, "method": "tools/call",
		"params": map[string]any{"name": "echo", "arguments": map[string]any{"text": text}},
	})
	return string(b)
}

// echo calls echo through base and waits for the answer, failing the
// test unless it comes back with text.
func (s *rawSession) echo(t testing.TB, base, id, text string) {
	t.Helper()
	s.mustPost(t, base, echoRequest(id, text))
	if m := s.waitAnswer(t, 15*time.Second, id); m.text() != text {
		t.Fatalf("session %s: echo %s answered %s %+v, want %q", s.ID, id, m.Result, m.Error, text)
	}
}
