package mcpsse_test

// What the bridge sends a sessionless upstream on a retry, seen by a
// scripted upstream: every retry has an id of its own, a HeaderMismatch
// costs no input round, and the requestState goes back as it came.

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptedSessionless is a sessionless upstream: server/discover says
// 2026-07-28; tools/call "ask" first answers -32020 (HeaderMismatch), then
// input_required, then, with inputResponses, a complete result. Its
// tools/list has a tool whose x-mcp-header annotation is invalid; tools/call
// "stray" is answered under an id the bridge did not send; tools/call "two"
// asks for two inputs in one round; tools/call "gone" gets a 404;
// tools/call "later" first asks for nothing ("retry later"), twice.
type scriptedSessionless struct {
	addr      string
	mu        sync.Mutex
	calls     []json.RawMessage // the params of each tools/call, in order
	ids       []string          // the id of each tools/call, in order
	lists     int               // tools/list requests
	discovers int               // server/discover requests
	later     []time.Time       // when each tools/call "later" came
}

func startScriptedSessionless(t *testing.T) *scriptedSessionless {
	t.Helper()
	s := &scriptedSessionless{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if r.Method != http.MethodPost || json.Unmarshal(body, &m) != nil {
			http.Error(w, "POST JSON-RPC only", http.StatusMethodNotAllowed)
			return
		}
		answer := func(member, value string) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"`+member+`":`+value+`}`)
		}
		switch m.Method {
		case "server/discover":
			s.mu.Lock()
			s.discovers++
			s.mu.Unlock()
			answer("result", `{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"scripted","version":"1"}}}`)
		case "tools/list":
			s.mu.Lock()
			s.lists++
			s.mu.Unlock()
			answer("result", `{"tools":[{"name":"ask","inputSchema":{"type":"object"}},{"name":"bad","inputSchema":{"type":"object","properties":{"o":{"type":"object","x-mcp-header":"O"}}}}]}`)
		case "tools/call":
			if strings.Contains(string(m.Params), `"name":"stray"`) {
				// An answer to a request the bridge did not send.
				m.ID = json.RawMessage(`"not-this-request"`)
				answer("result", `{"content":[{"type":"text","text":"stray"}]}`)
				return
			}
			if strings.Contains(string(m.Params), `"name":"gone"`) {
				http.NotFound(w, r) // refused as a legacy server would
				return
			}
			if strings.Contains(string(m.Params), `"name":"later"`) {
				// "Retry later": input_required asking for nothing, twice, then done.
				s.mu.Lock()
				s.later = append(s.later, time.Now())
				n := len(s.later)
				s.mu.Unlock()
				if n <= 2 {
					answer("result", `{"resultType":"input_required","requestState":"wait"}`)
				} else {
					answer("result", `{"resultType":"complete","content":[{"type":"text","text":"later"}]}`)
				}
				return
			}
			if strings.Contains(string(m.Params), `"name":"two"`) {
				answer("result", `{"resultType":"input_required","inputRequests":{"a":{"method":"roots/list"},"b":{"method":"elicitation/create","params":{"message":"?","requestedSchema":{"type":"object","properties":{}}}}}}`)
				return
			}
			s.mu.Lock()
			s.calls = append(s.calls, m.Params)
			s.ids = append(s.ids, string(m.ID))
			n := len(s.calls)
			s.mu.Unlock()
			switch {
			case n == 1:
				answer("error", `{"code":-32020,"message":"header mismatch"}`)
			case !strings.Contains(string(m.Params), `"inputResponses"`):
				answer("result", `{"resultType":"input_required","requestState":"st\u00e9<1>","inputRequests":{"q":{"method":"elicitation/create","params":{"message":"name?","requestedSchema":{"type":"object","properties":{}}}}}}`)
			default:
				answer("result", `{"resultType":"complete","content":[{"type":"text","text":"done"}]}`)
			}
		case "subscriptions/listen":
			// Held open until the bridge lets go of it.
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			answer("result", `{}`)
		}
	}))
	t.Cleanup(up.Close)
	s.addr = strings.TrimPrefix(up.URL, "http://")
	return s
}

func TestGenerationsRetryIDsAndRounds(t *testing.T) {
	up := startScriptedSessionless(t)
	// One round allowed: the HeaderMismatch retry must not use it up.
	tc := startCaddySite(t, everythingSite, "max_input_rounds 1", up.addr)
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "ask"))
	var req rpcMessage
	for req.ID == nil {
		// An answer before the input request is the call failing: say so
		// at once rather than wait for a request that will not come.
		if req = c.message(10 * time.Second); req.Method == "" {
			t.Fatalf("the call ended before asking for input: %+v", req)
		} else if req.Method != "elicitation/create" {
			req.ID = nil // a notification; with an id, another request
		}
	}
	c.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":{"action":"accept","content":{}}}`)
	m := c.response(10 * time.Second)
	if string(m.ID) != "1" || toolText(t, m) != "done" {
		t.Fatalf("answer %+v", m)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.ids) != 3 || up.lists != 1 {
		t.Fatalf("upstream saw tools/call ids %v and %d tools/list, want 3 calls and 1 list", up.ids, up.lists)
	}
	seen := map[string]bool{}
	for _, id := range up.ids {
		if seen[id] {
			t.Errorf("an id went upstream twice in one call: %v", up.ids)
		}
		seen[id] = true
	}
	if !strings.Contains(string(up.calls[2]), `"requestState":"st\u00e9<1>"`) {
		t.Errorf("the retry did not carry requestState byte for byte: %s", up.calls[2])
	}
}

// A tools/list result passing through the bridge leaves out the tools whose
// x-mcp-header annotation is invalid, as the revision requires of clients.
func TestGenerationsToolsListFiltered(t *testing.T) {
	up := startScriptedSessionless(t)
	tc := startCaddySite(t, everythingSite, "", up.addr)
	c := tc.openStream(t)
	c.initializeWith(`{}`)
	c.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`)
	m := c.response(10 * time.Second)
	var res struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if string(m.ID) != "2" || json.Unmarshal(m.Result, &res) != nil || len(res.Tools) != 1 || res.Tools[0].Name != "ask" {
		t.Fatalf("tools/list answered id %s error %+v result %s", m.ID, m.Error, m.Result)
	}
}

// An answer under an id the bridge did not send is not the call's answer:
// the client gets an error, not the stray result.
func TestGenerationsStrayAnswerID(t *testing.T) {
	up := startScriptedSessionless(t)
	tc := startCaddySite(t, everythingSite, "", up.addr)
	c := tc.openStream(t)
	c.initializeWith(`{}`)
	c.send(callTool(3, "stray"))
	if m := c.response(10 * time.Second); string(m.ID) != "3" || m.Error == nil || m.Result != nil {
		t.Fatalf("the stray answer was taken: id %s error %+v result %s", m.ID, m.Error, m.Result)
	}
}

// A client that fails one input request of a round gets the others of the
// round withdrawn (notifications/cancelled), and the call fails.
func TestGenerationsRoundErrorWithdrawsTheRest(t *testing.T) {
	up := startScriptedSessionless(t)
	tc := startCaddySite(t, everythingSite, "", up.addr)
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(4, "two"))
	first := c.nextRequest(10 * time.Second) // "a", roots/list: the round goes out in key order
	second := c.nextRequest(10 * time.Second)
	if first.Method != "roots/list" || second.Method != "elicitation/create" {
		t.Fatalf("input requests %s, %s", first.Method, second.Method)
	}
	c.send(`{"jsonrpc":"2.0","id":` + string(first.ID) + `,"error":{"code":-1,"message":"no roots for you"}}`)
	var withdrawn, failed bool
	for !withdrawn || !failed {
		m := c.message(10 * time.Second)
		switch {
		case m.Method == "notifications/cancelled":
			withdrawn = withdrawn || strings.Contains(string(m.Params), string(second.ID))
		case string(m.ID) == "4":
			if m.Error == nil || m.Error.Data["kind"] != "input_error" {
				t.Fatalf("answer id %s error %+v result %s", m.ID, m.Error, m.Result)
			}
			failed = true
		}
	}
}

// A sessionless request refused with a 404, as a legacy server would, makes
// the bridge forget the route's verdict: the next session probes again.
func TestGenerationsRefusalReprobes(t *testing.T) {
	up := startScriptedSessionless(t)
	tc := startCaddySite(t, everythingSite, "", up.addr)
	discovers := func() int {
		up.mu.Lock()
		defer up.mu.Unlock()
		return up.discovers
	}
	c := tc.openStream(t)
	c.initializeWith(`{}`)
	if n := discovers(); n != 1 {
		t.Fatalf("%d probes for the first session", n)
	}
	c.send(callTool(5, "gone"))
	if m := c.response(10 * time.Second); string(m.ID) != "5" || m.Error == nil {
		t.Fatalf("answer id %s error %+v result %s", m.ID, m.Error, m.Result)
	}
	tc.openStream(t).initializeWith(`{}`)
	if n := discovers(); n != 2 {
		t.Errorf("%d probes after a refusal and a new session, want 2", n)
	}
}

// A round that asks for nothing ("retry later") is retried after a pause,
// not at once, and asks the client nothing; the pause doubles for the
// next such round.
func TestGenerationsRetryLaterWaits(t *testing.T) {
	up := startScriptedSessionless(t)
	tc := startCaddySite(t, everythingSite, "", up.addr)
	c := tc.openStream(t)
	c.initializeWith(allCapabilities)
	c.send(callTool(1, "later"))
	m := c.message(10 * time.Second)
	if string(m.ID) != "1" || toolText(t, m) != "later" {
		t.Fatalf("first message after the call: %+v (want its answer, no input request)", m)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.later) != 3 {
		t.Fatalf("upstream saw %d calls, want 3", len(up.later))
	}
	// Lower bounds: the bridge waited before each retry, longer the second time.
	if gap := up.later[1].Sub(up.later[0]); gap < 200*time.Millisecond {
		t.Errorf("retried %s after a round that asked for nothing, want a pause of 250ms", gap)
	}
	if gap := up.later[2].Sub(up.later[1]); gap < 450*time.Millisecond {
		t.Errorf("retried %s after a second round that asked for nothing, want a pause of 500ms", gap)
	}
}
