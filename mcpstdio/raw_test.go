package mcpstdio_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawClient speaks Streamable HTTP by hand, to check the wire.
type rawClient struct {
	t      *testing.T
	url    string
	id     string      // Mcp-Session-Id once initialized
	header http.Header // sent with every request
}

func newRaw(t *testing.T, tc *testCaddy) *rawClient {
	return &rawClient{t: t, url: tc.base + "/mcp", header: http.Header{}}
}

var rawHTTP = &http.Client{Timeout: 30 * time.Second}

// reply is one HTTP answer: its status, header, and the JSON-RPC messages
// of its body (one JSON body, or every event of an event stream).
type reply struct {
	status int
	header http.Header
	body   []byte
	msgs   []rpcMessage
}

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

func (c *rawClient) do(method, body string) reply {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if c.id != "" {
		req.Header.Set("Mcp-Session-Id", c.id)
	}
	resp, err := rawHTTP.Do(req)
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s: reading the reply: %v", method, err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for _, ev := range bytes.Split(b, []byte("\n\n")) {
			var data []byte
			for _, line := range bytes.Split(ev, []byte("\n")) {
				if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
					data = append(data, d...)
				}
			}
			if len(data) > 0 {
				var m rpcMessage
				if err := json.Unmarshal(data, &m); err != nil {
					c.t.Fatalf("event data %s: %v", data, err)
				}
				r.msgs = append(r.msgs, m)
			}
		}
	} else if len(bytes.TrimSpace(b)) > 0 && resp.Header.Get("Content-Type") == "application/json" {
		var m rpcMessage
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("body %s: %v", b, err)
		}
		r.msgs = append(r.msgs, m)
	}
	return r
}

// post sends body and fails the test unless the status is want.
func (c *rawClient) post(body string, want int) reply {
	c.t.Helper()
	r := c.do(http.MethodPost, body)
	if r.status != want {
		c.t.Fatalf("POST %.80s: HTTP %d %s, want %d", body, r.status, r.body, want)
	}
	return r
}

const initBody = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"sampling":{}},"clientInfo":{"name":"raw","version":"1"}}}`

// initialize runs the handshake and keeps the session id.
func (c *rawClient) initialize() reply {
	c.t.Helper()
	r := c.post(initBody, http.StatusOK)
	if len(r.msgs) != 1 || r.msgs[0].Result == nil || string(r.msgs[0].ID) != "0" {
		c.t.Fatalf("initialize answered %s", r.body)
	}
	c.id = r.header.Get("Mcp-Session-Id")
	if c.id == "" {
		c.t.Fatal("initialize answered without Mcp-Session-Id")
	}
	c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, http.StatusAccepted)
	return r
}

// callTool posts tools/call with id and returns the reply.
func (c *rawClient) callTool(id int, name string, args string) reply {
	c.t.Helper()
	return c.post(`{"jsonrpc":"2.0","id":`+itoa(id)+`,"method":"tools/call","params":{"name":"`+name+`","arguments":`+args+`}}`, http.StatusOK)
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// toolText is the first text content of a tools/call response.
func toolText(t *testing.T, m rpcMessage) string {
	t.Helper()
	if m.Error != nil {
		t.Fatalf("tools/call error: %+v", *m.Error)
	}
	var res struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(m.Result, &res); err != nil || len(res.Content) == 0 {
		t.Fatalf("tools/call result %s: %v", m.Result, err)
	}
	return res.Content[0].Text
}

// sseClient is an HTTP+SSE client by hand: a GET /sse stream and POSTs to
// the endpoint it names, through mcp_sse.
type sseClient struct {
	t        *testing.T
	endpoint string
	events   chan rpcMessage
}

func newSSE(t *testing.T, tc *testCaddy) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.base+"/sse", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse: %s", resp.Status)
	}
	c := &sseClient{t: t, events: make(chan rpcMessage, 100)}
	endpoint := make(chan string, 1)
	go func() {
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		event := ""
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "endpoint":
				endpoint <- tc.base + "/" + strings.TrimPrefix(strings.TrimPrefix(line, "data: "), "./")
			case strings.HasPrefix(line, "data: ") && event == "message":
				var m rpcMessage
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m) == nil {
					c.events <- m
				}
			}
		}
	}()
	select {
	case c.endpoint = <-endpoint:
	case <-time.After(10 * time.Second):
		t.Fatal("no endpoint event within 10s")
	}
	return c
}

func (c *sseClient) post(body string) {
	c.t.Helper()
	resp, err := rawHTTP.Post(c.endpoint, "application/json", strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		c.t.Fatalf("POST %.60s: %s", body, resp.Status)
	}
}

func (c *sseClient) next() rpcMessage {
	c.t.Helper()
	select {
	case m := <-c.events:
		return m
	case <-time.After(10 * time.Second):
		c.t.Fatal("no message on the stream within 10s")
		return rpcMessage{}
	}
}
