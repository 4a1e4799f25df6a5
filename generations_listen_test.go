package mcpsse_test

// What a sessionless server sends outside a request reaches a legacy
// client through the bridge's subscriptions/listen stream; log messages
// reach it once it asked for them with logging/setLevel.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// untilMethod reads the stream until a message of method, failing after
// within.
func (c *rawClient) untilMethod(method string, within time.Duration) rpcMessage {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if m := c.message(time.Until(deadline)); m.Method == method {
			return m
		}
	}
}

func TestGenerationsResourceSubscription(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	c := tc.openStream(t)
	c.initializeWith(`{}`)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"test://watched-resource"}}`)
	if m := c.response(10 * time.Second); string(m.ID) != "1" || string(m.Result) != "{}" {
		t.Fatalf("subscribe answered %+v", m)
	}
	// The server updates the resource every 3s.
	m := c.untilMethod("notifications/resources/updated", 15*time.Second)
	if !strings.Contains(string(m.Params), `"uri":"test://watched-resource"`) || strings.Contains(string(m.Params), "subscriptionId") {
		t.Errorf("update %s", m.Params)
	}
	c.send(`{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{}}`)
	if m := c.response(10 * time.Second); m.Error == nil || m.Error.Code != -32602 {
		t.Errorf("subscribe without uri answered %+v", m)
	}
}

// Past the bound, a subscription is refused, and the session goes on.
func TestGenerationsSubscriptionBound(t *testing.T) {
	tc := sessionlessCaddy(t, "max_inflight 200")
	c := tc.openStream(t)
	c.initializeWith(`{}`)
	var batch strings.Builder
	batch.WriteString("[")
	for i := range 100 {
		if i > 0 {
			batch.WriteString(",")
		}
		fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"resources/subscribe","params":{"uri":"test://r/%d/%s"}}`, i, i, strings.Repeat("x", 1000))
	}
	batch.WriteString("]")
	c.send(batch.String())
	refused := 0
	for range 100 {
		if m := c.response(10 * time.Second); m.Error != nil && strings.Contains(m.Error.Message, "too many subscriptions") {
			refused++
		}
	}
	// 64KiB of URIs of ~1KiB each: the first 64 or so are taken.
	if refused < 30 || refused > 40 {
		t.Errorf("%d of 100 subscriptions refused, want the ones past 64KiB", refused)
	}
}

func TestGenerationsToolChangeSeenByAnotherSession(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	watcher := tc.openStream(t)
	watcher.initializeWith(`{}`)
	caller := tc.openStream(t)
	caller.initializeWith(`{}`)
	// The watcher's listen stream is open once the server acknowledged
	// it; the bridge does not relay that, so wait for it through a change
	// of the caller's own until the watcher sees one.
	deadline := time.Now().Add(20 * time.Second)
	for id := 1; ; id++ {
		caller.send(callTool(id, "test_trigger_tool_change"))
		if m := caller.response(10 * time.Second); toolText(t, m) != "tools_list_changed published" {
			t.Fatalf("trigger answered %+v", m)
		}
		ev, ok := watcher.tryMessage(time.Second)
		if ok && ev.Method == "notifications/tools/list_changed" {
			if strings.Contains(string(ev.Params), "subscriptionId") {
				t.Errorf("relayed with the subscription's _meta: %s", ev.Params)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher never saw tools/list_changed")
		}
	}
}

func TestGenerationsLogging(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	c := tc.openStream(t)
	c.initializeWith(`{}`)
	// Before setLevel the server is not asked for log messages.
	c.send(callTool(1, "test_logging_tool"))
	if m := c.message(10 * time.Second); string(m.ID) != "1" {
		t.Fatalf("got %+v before the answer, want the answer alone", m)
	}
	c.send(`{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"info"}}`)
	if m := c.response(10 * time.Second); string(m.ID) != "2" || string(m.Result) != "{}" {
		t.Fatalf("setLevel answered %+v", m)
	}
	c.send(callTool(3, "test_logging_tool"))
	m := c.message(10 * time.Second)
	if m.Method != "notifications/message" || !strings.Contains(string(m.Params), "test_logging_tool executed") {
		t.Fatalf("got %+v, want the log message", m)
	}
	if m := c.response(10 * time.Second); string(m.ID) != "3" {
		t.Fatalf("got %+v", m)
	}
	c.send(`{"jsonrpc":"2.0","id":4,"method":"ping"}`)
	if m := c.response(10 * time.Second); string(m.ID) != "4" || string(m.Result) != "{}" {
		t.Fatalf("ping answered %+v", m)
	}
}

// tryMessage is message that reports false, instead of failing, when none
// comes within the time.
func (c *rawClient) tryMessage(within time.Duration) (rpcMessage, bool) {
	c.t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				c.t.Fatal("stream ended")
			}
			if ev.Name != "message" {
				continue
			}
			var m rpcMessage
			if err := json.Unmarshal(ev.Data, &m); err != nil {
				c.t.Fatalf("message frame is not JSON: %q", ev.Data)
			}
			return m, true
		case <-timer.C:
			return rpcMessage{}, false
		}
	}
}

// test_x_mcp_header wants its region argument in Mcp-Param-Region: the
// first call, before the bridge has seen the tool's definition, is refused
// with -32020; the bridge lists the tools and sends it again with the
// header (base64 for a value that is not plain ASCII).
func TestGenerationsParamHeaders(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	c := tc.openStream(t)
	c.initializeWith(`{}`)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_x_mcp_header","arguments":{"region":"Zürich","level":3}}}`)
	if m := c.response(10 * time.Second); toolText(t, m) != "region=Zürich" {
		t.Fatalf("got %+v", m)
	}
	c.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if m := c.response(10 * time.Second); !strings.Contains(string(m.Result), `"test_x_mcp_header"`) {
		t.Fatalf("tools/list %s", m.Result)
	}
	c.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_x_mcp_header","arguments":{"region":"eu-west"}}}`)
	if m := c.response(10 * time.Second); toolText(t, m) != "region=eu-west" {
		t.Fatalf("got %+v", m)
	}
}

// Progress goes out under the client's own token; a tool that sends a
// request of its own (not an input round) gets the server's error,
// relayed as it is.
func TestGenerationsProgressAndServerRequests(t *testing.T) {
	tc := sessionlessCaddy(t, "")
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"tok-1"}}}`)
	progress := 0
	for {
		m := c.message(10 * time.Second)
		if m.Method == "notifications/progress" {
			if !strings.Contains(string(m.Params), `"progressToken":"tok-1"`) {
				t.Fatalf("progress %s", m.Params)
			}
			progress++
			continue
		}
		if string(m.ID) != "1" || m.Result == nil {
			t.Fatalf("got %+v", m)
		}
		break
	}
	if progress == 0 {
		t.Error("no progress notification")
	}
	c.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"hi"}}}`)
	m := c.response(10 * time.Second)
	if string(m.ID) != "2" || (m.Error == nil && !strings.Contains(string(m.Result), `"isError":true`)) {
		t.Fatalf("got %+v %s, want the server's error", m, m.Result)
	}
	t.Logf("test_sampling answered: %+v %s", m.Error, m.Result)
}
