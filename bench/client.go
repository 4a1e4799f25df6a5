package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// The load generator speaks raw HTTP: no SDK on the client side, so that it
// costs little and measures the servers, not itself.

var httpClient = &http.Client{Transport: &http.Transport{
	MaxIdleConns:        4096,
	MaxIdleConnsPerHost: 4096,
	IdleConnTimeout:     time.Minute,
	DisableCompression:  true,
}}

// reply is a message read off a stream or out of a POST's answer.
type reply struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result *struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"result"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func (r *reply) text() string {
	if r.Result == nil || len(r.Result.Content) == 0 {
		return ""
	}
	return r.Result.Content[0].Text
}

// counters collects what went wrong across sessions.
type counters struct {
	missing, duplicated, misrouted, failed atomic.Int64
}

func (c *counters) total() int64 {
	return c.missing.Load() + c.duplicated.Load() + c.misrouted.Load() + c.failed.Load()
}

// session is one MCP session from the load generator's side.
type session interface {
	// call sends a request and returns its reply.
	call(ctx context.Context, id int64, method, params string) (*reply, error)
	close()
}

// sseSession is an HTTP+SSE session.
type sseSession struct {
	endpoint      string
	authorization string // sent with every request when set
	body          io.ReadCloser
	cancel        context.CancelFunc
	errs          *counters

	mu       sync.Mutex
	pending  map[string]chan *reply
	answered map[string]bool
	// notified counts notifications, for the burst scenario.
	notified atomic.Int64
	done     chan struct{}
}

// openSSE opens a stream at sseURL. If postHost is set, the session's
// POSTs go there (another instance of a cluster) instead of to the host
// the endpoint event names.
func openSSE(sseURL, postHost, authorization string, errs *counters) (*sseSession, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sseURL, nil)
	req.Header.Set("Accept", "text/event-stream")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %s", sseURL, resp.Status)
	}
	s := &sseSession{authorization: authorization, body: resp.Body, cancel: cancel, errs: errs, pending: map[string]chan *reply{},
		answered: map[string]bool{}, done: make(chan struct{})}
	endpoint := make(chan string, 1)
	go s.read(endpoint)
	select {
	case e := <-endpoint:
		base, _ := url.Parse(sseURL)
		ref, err := base.Parse(e)
		if err != nil {
			s.close()
			return nil, err
		}
		if postHost != "" {
			ref.Host = postHost
		}
		s.endpoint = ref.String()
		return s, nil
	case <-time.After(30 * time.Second):
		s.close()
		return nil, errors.New("no endpoint event within 30s")
	}
}

func (s *sseSession) read(endpoint chan<- string) {
	defer close(s.done)
	var p sse.Parser
	buf := make([]byte, 64<<10)
	for {
		n, err := s.body.Read(buf)
		if n > 0 {
			_ = p.Feed(buf[:n], func(ev sse.Event) error {
				switch ev.Name {
				case sse.EventEndpoint:
					select {
					case endpoint <- string(ev.Data):
					default:
					}
				case sse.EventMessage, "":
					s.deliver(ev.Data)
				}
				return nil
			})
		}
		if err != nil {
			return
		}
	}
}

func (s *sseSession) deliver(data []byte) {
	var r reply
	if err := json.Unmarshal(data, &r); err != nil {
		s.errs.failed.Add(1)
		return
	}
	if r.ID == nil {
		s.notified.Add(1)
		return
	}
	if r.Method != "" {
		// A request of the server's (the mrtr scenario's elicitation):
		// answered at once, off the reading goroutine.
		answer := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"action":"accept","content":{}}}`, r.ID)
		go func() {
			if err := s.post(context.Background(), answer); err != nil {
				s.errs.failed.Add(1)
			}
		}()
		return
	}
	id := string(r.ID)
	s.mu.Lock()
	ch, ok := s.pending[id]
	delete(s.pending, id)
	dup := s.answered[id]
	s.answered[id] = true
	s.mu.Unlock()
	switch {
	case ok:
		ch <- &r
	case dup:
		s.errs.duplicated.Add(1)
	default:
		// An id this session never sent, or one it gave up on: either way
		// an answer that is not where it belongs.
		s.errs.misrouted.Add(1)
	}
}

func (s *sseSession) call(ctx context.Context, id int64, method, params string) (*reply, error) {
	key := fmt.Sprint(id)
	ch := make(chan *reply, 1)
	s.mu.Lock()
	s.pending[key] = ch
	s.mu.Unlock()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params)
	if err := s.post(ctx, body); err != nil {
		s.forget(key)
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		s.forget(key)
		return nil, ctx.Err()
	case <-s.done:
		s.forget(key)
		return nil, errors.New("stream ended")
	}
}

func (s *sseSession) forget(key string) {
	s.mu.Lock()
	delete(s.pending, key)
	s.answered[key] = true // a late answer is then counted, not lost
	s.mu.Unlock()
}

func (s *sseSession) notify(ctx context.Context, method string) error {
	return s.post(ctx, fmt.Sprintf(`{"jsonrpc":"2.0","method":%q}`, method))
}

func (s *sseSession) post(ctx context.Context, body string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if s.authorization != "" {
		req.Header.Set("Authorization", s.authorization)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST: %s", resp.Status)
	}
	return nil
}

func (s *sseSession) close() {
	s.cancel()
	s.body.Close()
}

// streamableSession is a Streamable HTTP session, for the direct floor.
type streamableSession struct {
	url       string
	sessionID string
	// modern speaks the sessionless revision: every request carries the
	// _meta members and headers the bridge sends such a server.
	modern bool
}

// modernMeta is the _meta of every request of a sessionless client.
const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},"io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}`

func (s *streamableSession) call(ctx context.Context, id int64, method, params string) (*reply, error) {
	var header http.Header
	if s.modern {
		if params == "{}" {
			params = "{" + modernMeta + "}"
		} else {
			params = "{" + modernMeta + "," + strings.TrimPrefix(params, "{")
		}
		header = http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {method}}
		var p struct {
			Name string `json:"name"`
		}
		if json.Unmarshal([]byte(params), &p) == nil && p.Name != "" {
			header.Set("Mcp-Name", p.Name)
		}
	}
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params)
	var got *reply
	err := s.postWith(ctx, body, header, func(r *reply) {
		if string(r.ID) == fmt.Sprint(id) {
			got = r
		}
	})
	if err == nil && got == nil {
		err = errors.New("no response in the reply")
	}
	return got, err
}

func (s *streamableSession) post(ctx context.Context, body string, onMessage func(*reply)) error {
	return s.postWith(ctx, body, nil, onMessage)
}

func (s *streamableSession) postWith(ctx context.Context, body string, header http.Header, onMessage func(*reply)) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.sessionID != "" {
		req.Header.Set("Mcp-Session-Id", s.sessionID)
		req.Header.Set("Mcp-Protocol-Version", "2024-11-05")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		s.sessionID = id
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST: %s", resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		if len(bytes.TrimSpace(data)) > 0 {
			var r reply
			if err := json.Unmarshal(data, &r); err != nil {
				return err
			}
			onMessage(&r)
		}
		return nil
	}
	var p sse.Parser
	return p.Feed(data, func(ev sse.Event) error {
		var r reply
		if err := json.Unmarshal(ev.Data, &r); err == nil {
			onMessage(&r)
		}
		return nil
	})
}

func (s *streamableSession) close() {}

// The client declares elicitation, which it answers at once (accept,
// empty content): the confirm tool of the mrtr scenario asks for it.
const initParams = `{"protocolVersion":"2024-11-05","capabilities":{"elicitation":{}},"clientInfo":{"name":"bench","version":"1"}}`

// handshake runs initialize and notifications/initialized.
func handshake(ctx context.Context, s session, id int64) error {
	// An error reply is no failure here: supergateway shares one stdio
	// server among all sessions and initializes it itself, so that server
	// refuses every initialize. Whatever is wrong shows in the echo calls,
	// which are all checked.
	if s, ok := s.(*streamableSession); ok && s.modern {
		return nil // the sessionless revision has no handshake
	}
	if _, err := s.call(ctx, id, "initialize", initParams); err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	switch s := s.(type) {
	case *sseSession:
		return s.notify(ctx, "notifications/initialized")
	case *streamableSession:
		return s.post(ctx, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, func(*reply) {})
	}
	return nil
}
