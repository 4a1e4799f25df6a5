package generation

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpsse/caddy-mcp-sse/internal/jsonscan"
)

func TestRequestSetsMetaAndKeepsTheRest(t *testing.T) {
	raw := json.RawMessage(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":{"a":"<&>"},"_meta":{"progressToken":"p1","io.modelcontextprotocol/protocolVersion":"1900-01-01"},"inputResponses":{"old":{}}}}`)
	meta := Meta{Client: Client{Info: json.RawMessage(`{"name":"c","version":"1"}`), Capabilities: json.RawMessage(`{"sampling":{}}`)}, LogLevel: "debug"}
	out, err := Request(raw, json.RawMessage(`"r2"`), meta, map[string]json.RawMessage{
		"inputResponses": json.RawMessage(`{"k":{"action":"accept"}}`), "requestState": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"r2","jsonrpc":"2.0","method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"sampling":{}},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},"io.modelcontextprotocol/logLevel":"debug","io.modelcontextprotocol/protocolVersion":"2026-07-28","progressToken":"p1"},"arguments":{"a":"<&>"},"inputResponses":{"k":{"action":"accept"}},"name":"x"}}`
	if !sameJSON(out, []byte(want)) {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	// No params, and no log level: only the three members.
	out, err = Request(json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`), nil, Meta{Client: Client{Info: json.RawMessage(`{}`), Capabilities: json.RawMessage(`{}`)}}, nil)
	if err != nil || !sameJSON(out, []byte(`{"id":1,"jsonrpc":"2.0","method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{},"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`)) {
		t.Errorf("no params: %s, %v", out, err)
	}
	for _, bad := range []string{`{"id":1,"method":"m","params":[1]}`, `{"id":1,"method":"m","params":{"_meta":3}}`, `nope`} {
		if _, err := Request(json.RawMessage(bad), nil, meta, nil); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestParseInitializeAndCapabilities(t *testing.T) {
	c, err := ParseInitialize(json.RawMessage(`{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{},"roots":{"listChanged":true}},"clientInfo":{"name":"n","version":"1"}}`))
	if err != nil || c.ProtocolVersion != "2025-06-18" || string(c.Info) != `{"name":"n","version":"1"}` ||
		string(c.Capabilities) != `{"elicitation":{"form":{}},"roots":{"listChanged":true}}` {
		t.Errorf("%+v %s %v", c, c.Capabilities, err)
	}
	c, err = ParseInitialize(json.RawMessage(`{"protocolVersion":"2024-11-05","capabilities":"x"}`))
	if err != nil || string(c.Capabilities) != `{}` || string(c.Info) != `{"name":"unknown","version":"0"}` {
		t.Errorf("bad members: %+v %v", c, err)
	}
	if _, err := ParseInitialize(nil); err == nil {
		t.Error("no params: no error")
	}
	if !Declares(json.RawMessage(`{"sampling":{}}`), "sampling") || Declares(json.RawMessage(`{"sampling":{}}`), "roots") ||
		Declares(json.RawMessage(`{"roots":true}`), "roots") {
		t.Error("Declares")
	}
}

func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		answer string
		modern bool
	}{
		{`{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28","2025-11-25"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s","version":"1"}}}}`, true},
		// A stateful Go SDK server answers with the legacy versions only.
		{`{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2025-11-25","2025-06-18"],"capabilities":{}}}`, false},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["2026-07-28"],"requested":"2026-07-28"}}}`, true},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["2025-11-25"]}}}`, false},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}`, false},
		{`not json`, false},
		{``, false},
	} {
		var answer json.RawMessage
		if c.answer != "" {
			answer = json.RawMessage(c.answer)
		}
		if modern, _ := Verdict(answer); modern != c.modern {
			t.Errorf("%s: modern %v, want %v", c.answer, modern, c.modern)
		}
	}
	_, d := Verdict(json.RawMessage(`{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"instructions":"hi","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s","version":"1"}}}}`))
	got := InitializeResult(json.RawMessage(`3`), "2024-11-05", d)
	want := `{"id":3,"jsonrpc":"2.0","result":{"capabilities":{"tools":{}},"instructions":"hi","protocolVersion":"2024-11-05","serverInfo":{"name":"s","version":"1"}}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := InitializeResult(json.RawMessage(`3`), "2099-01-01", Discovery{}); !strings.Contains(string(got), `"protocolVersion":"2025-11-25"`) ||
		!strings.Contains(string(got), `"capabilities":{}`) {
		t.Errorf("unknown version: %s", got)
	}
}

func TestDiscoverRequest(t *testing.T) {
	got := DiscoverRequest(Client{Info: json.RawMessage(`{"name":"c"}`), Capabilities: json.RawMessage(`{"roots":{}}`)})
	want := `{"id":"caddy-mcp-sse-discover","jsonrpc":"2.0","method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"roots":{}},"io.modelcontextprotocol/clientInfo":{"name":"c"},"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	if !sameJSON(got, []byte(want)) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseResult(t *testing.T) {
	// requestState with characters JSON encoders like to escape comes back
	// byte for byte.
	state := `"a<b>&c\u00e9\"\\ \u2028"`
	msg := `{"jsonrpc":"2.0","id":2,"result":{"content":null,"requestState":` + state + `,"resultType":"input_required","inputRequests":{"z":{"method":"roots/list"},"a":{"method":"elicitation/create","params":{"message":"?"}}}}}`
	ir, ok, err := ParseResult(json.RawMessage(msg))
	if err != nil || !ok || string(ir.State) != state || len(ir.Requests) != 2 ||
		ir.Requests[0].Key != "a" || ir.Requests[1].Key != "z" || string(ir.Requests[1].Params) != `{}` {
		t.Fatalf("%+v %v %v", ir, ok, err)
	}
	set, err := RetryParams(map[string]json.RawMessage{"a": json.RawMessage(`{"action":"accept"}`)}, ir.State)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Request(json.RawMessage(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t"}}`), json.RawMessage(`"r"`), Meta{Client: Client{Info: json.RawMessage(`{}`), Capabilities: json.RawMessage(`{}`)}}, set)
	if err != nil || !strings.Contains(string(out), `"requestState":`+state) {
		t.Errorf("retry lost requestState's bytes: %s %v", out, err)
	}
	if !strings.Contains(string(ClientRequest(json.RawMessage(`"id1"`), ir.Requests[0])), `{"id":"id1","jsonrpc":"2.0","method":"elicitation/create","params":{"message":"?"}}`) {
		t.Error("ClientRequest")
	}

	for _, plain := range []string{
		`{"jsonrpc":"2.0","id":2,"result":{"content":[],"resultType":"complete"}}`,
		`{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"x"}}`,
		`{"jsonrpc":"2.0","id":2,"result":{"content":[]}}`,
	} {
		if _, ok, err := ParseResult(json.RawMessage(plain)); ok || err != nil {
			t.Errorf("%s: %v %v", plain, ok, err)
		}
	}
	var many strings.Builder
	for i := range MaxInputRequests + 1 {
		if i > 0 {
			many.WriteByte(',')
		}
		many.WriteString(`"k` + string(rune('a'+i%26)) + strings.Repeat("x", i) + `":{"method":"roots/list"}`)
	}
	for _, bad := range []string{
		`{"result":{"resultType":"input_required","inputRequests":{` + many.String() + `}}}`,
		`{"result":{"resultType":"input_required","inputRequests":{"a":{"params":{}}}}}`,
		`{"result":{"resultType":"input_required","inputRequests":{"a":{"method":"roots/list"}},"requestState":{"x":1}}}`,
	} {
		if _, ok, err := ParseResult(json.RawMessage(bad)); !ok || err == nil {
			t.Errorf("%.80s…: ok %v err %v", bad, ok, err)
		}
	}
	// No requests at all: a loaded server; retried as a round.
	if ir, ok, err := ParseResult(json.RawMessage(`{"result":{"resultType":"input_required","inputRequests":{}}}`)); !ok || err != nil || len(ir.Requests) != 0 {
		t.Errorf("empty round: %v %v", ok, err)
	}
}

func TestComplete(t *testing.T) {
	for _, c := range []struct{ msg, id, answered, want string }{
		{`{"jsonrpc":"2.0","id":"mcp-sse-retry-1","result":{"content":[{"type":"text","text":"<ok>"}],"resultType":"complete"}}`, `5`, `"mcp-sse-retry-1"`,
			`{"id":5,"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"<ok>"}]}}`},
		{`{"jsonrpc":"2.0","id":"r","error":{"code":-32602,"message":"bad"}}`, `5`, `"r"`, `{"error":{"code":-32602,"message":"bad"},"id":5,"jsonrpc":"2.0"}`},
		// Under the client's id already and without resultType: as it came.
		{`{"jsonrpc":"2.0","id":5,"result":{"content":[]}}`, `5`, `5`, `{"jsonrpc":"2.0","id":5,"result":{"content":[]}}`},
		// Under the client's id, with resultType: stripped, wherever it is.
		{`{"jsonrpc":"2.0","id":5,"result":{"resultType":"complete"}}`, `5`, `5`, `{"id":5,"jsonrpc":"2.0","result":{}}`},
		{`{"result":{"a":1, "resultType" : "complete" ,"b":"resultType"}, "id":"x","jsonrpc":"2.0"}`, `"y"`, `"x"`, `{"id":"y","jsonrpc":"2.0","result":{"a":1,"b":"resultType"}}`},
		{`{"jsonrpc":"2.0","id":1,"result":{"text":"\"resultType\":1","resultType":"complete","x":[{"resultType":2}]}}`, `1`, `1`, `{"id":1,"jsonrpc":"2.0","result":{"text":"\"resultType\":1","x":[{"resultType":2}]}}`},
		// An error under a null id goes out under the client's.
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad"}}`, `5`, `null`, `{"error":{"code":-32600,"message":"bad"},"id":5,"jsonrpc":"2.0"}`},
	} {
		got := Complete(json.RawMessage(c.msg), json.RawMessage(c.id), json.RawMessage(c.answered))
		if !sameJSON(got, []byte(c.want)) {
			t.Errorf("Complete(%s) = %s, want %s", c.msg, got, c.want)
		}
		if slow := completeSlow(json.RawMessage(c.msg), json.RawMessage(c.id)); !sameJSON(slow, []byte(c.want)) {
			t.Errorf("completeSlow(%s) = %s, want %s", c.msg, slow, c.want)
		}
	}
	// Untouched bytes stay as they came.
	plain := `{"jsonrpc":"2.0","id":5,"result":{"content":[]}}`
	if got := Complete(json.RawMessage(plain), json.RawMessage(`5`), json.RawMessage(`5`)); string(got) != plain {
		t.Errorf("%s", got)
	}
}

// FuzzComplete checks the splice against the maps: the same JSON value
// for every valid message.
func FuzzComplete(f *testing.F) {
	f.Add(`{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[]}}`, `7`)
	f.Add(`{"result":{"resultType":"input_required"},"id":"a"}`, `"b"`)
	f.Add(`{"id":1,"error":{"code":1}}`, `2`)
	// No member named exactly "id": left to the maps.
	f.Add(`{"jsonrpc":"2.0","Id":1,"result":{"resultType":"complete"}}`, `3`)
	f.Fuzz(func(t *testing.T, msg, id string) {
		if !json.Valid([]byte(msg)) || !json.Valid([]byte(id)) {
			return
		}
		var top map[string]json.RawMessage
		if json.Unmarshal([]byte(msg), &top) != nil {
			return
		}
		fast, ok := completeFast(json.RawMessage(msg), json.RawMessage(id))
		if !ok {
			return
		}
		if slow := completeSlow(json.RawMessage(msg), json.RawMessage(id)); !sameJSON(fast, slow) {
			t.Errorf("completeFast(%s, %s) = %s, completeSlow = %s", msg, id, fast, slow)
		}
	})
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func TestParseAnswer(t *testing.T) {
	if a := ParseAnswer(json.RawMessage(`{"jsonrpc":"2.0","id":"x","result":{"action":"decline"}}`)); a.Failed || string(a.Result) != `{"action":"decline"}` {
		t.Errorf("%+v", a)
	}
	if a := ParseAnswer(json.RawMessage(`{"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"no"}}`)); !a.Failed || a.Code != -1 || a.Message != "no" {
		t.Errorf("%+v", a)
	}
	if a := ParseAnswer(json.RawMessage(`{"jsonrpc":"2.0","id":"x","result":[1]}`)); !a.Failed {
		t.Errorf("%+v", a)
	}
}

func TestSessionAnswers(t *testing.T) {
	s := NewSession(Client{}, Discovery{})
	id1, ch1 := s.Ask()
	id2, _ := s.Ask()
	if string(id1) == string(id2) {
		t.Fatal("ids repeat")
	}
	if s.Answer(json.RawMessage(`"not-minted"`), nil) || s.Answer(json.RawMessage(`7`), nil) {
		t.Error("an answer to an id the bridge did not mint was taken")
	}
	if !s.Answer(id1, json.RawMessage(`{"a":1}`)) {
		t.Fatal("answer not taken")
	}
	if s.Answer(id1, json.RawMessage(`{"a":2}`)) {
		t.Error("a second answer was taken")
	}
	if got := <-ch1; string(got) != `{"a":1}` {
		t.Errorf("got %s", got)
	}
	s.Cancel(id2)
	if s.Answer(id2, nil) || s.Waiting() != 0 {
		t.Error("a cancelled request still awaits")
	}
	ctx, cancel := context.WithCancel(context.Background())
	untrack := s.Track(json.RawMessage(`"c1"`), cancel)
	if s.Cancelled(json.RawMessage(`{"requestId":"c2"}`)) || !s.Cancelled(json.RawMessage(`{"requestId":"c1","reason":"x"}`)) || ctx.Err() == nil {
		t.Error("Cancelled")
	}
	untrack()
	if s.Cancelled(json.RawMessage(`{"requestId":"c1"}`)) {
		t.Error("untracked request still cancellable")
	}
}

// FuzzRequest checks the splice against the maps: the same JSON value
// for every valid message.
func FuzzRequest(f *testing.F) {
	f.Add(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1},"_meta":{"progressToken":1}}}`, `"r-1"`, "debug", true)
	f.Add(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, ``, "", false)
	f.Add(`{"params":{"_meta":{}, "x":null},"id":"a"}`, `2`, "info", true)
	f.Add(`{"params":{"_meta":{"io.modelcontextprotocol/logLevel":"x"}}}`, `2`, "", false)
	f.Fuzz(func(t *testing.T, raw, id, level string, withSet bool) {
		if !json.Valid([]byte(raw)) || (id != "" && !json.Valid([]byte(id))) {
			return
		}
		var idRaw json.RawMessage
		if id != "" {
			idRaw = json.RawMessage(id)
		}
		meta := Meta{Client: Client{Info: json.RawMessage(`{"name":"c","version":"1"}`), Capabilities: json.RawMessage(`{"sampling":{}}`)}, LogLevel: level}
		var set map[string]json.RawMessage
		if withSet {
			set = map[string]json.RawMessage{"inputResponses": json.RawMessage(`{"k":{"action":"accept"}}`), "requestState": json.RawMessage(`"s"`), "x": nil}
		}
		fast, ok := requestFast(json.RawMessage(raw), idRaw, meta, set)
		slow, err := requestSlow(json.RawMessage(raw), idRaw, meta, set)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("requestFast(%s) = %s, requestSlow failed: %v", raw, fast, err)
		}
		if !json.Valid(fast) || !sameJSON(fast, slow) {
			t.Errorf("requestFast(%s, %s) = %s, requestSlow = %s", raw, id, fast, slow)
		}
		// The maps' value hides a repeated key (the last wins for them),
		// but decoders upstream differ on which one wins.
		if where := repeatedKey(fast); where != "" {
			t.Errorf("requestFast(%s, %s) = %s, a key repeated %s", raw, id, fast, where)
		}
	})
}

// repeatedKey says where msg repeats a key: at its top, in params or in
// params._meta (the members requestFast writes); "" if nowhere.
func repeatedKey(msg []byte) string {
	top, ok := jsonscan.Members(msg, 1<<20)
	if !ok {
		return "at the top"
	}
	p := jsonscan.Find(top, "params")
	if p == nil {
		return ""
	}
	params, ok := jsonscan.Members(p.Value, 1<<20)
	if !ok {
		return "in params"
	}
	if m := jsonscan.Find(params, "_meta"); m != nil {
		if _, ok := jsonscan.Members(m.Value, 1<<20); !ok {
			return "in params._meta"
		}
	}
	return ""
}

func TestServerSideRewrites(t *testing.T) {
	params := json.RawMessage(`{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"c"},"progressToken":"p"}}`)
	if got := string(LegacyParams(params)); got != `{"_meta":{"progressToken":"p"},"name":"x"}` {
		t.Errorf("LegacyParams = %s", got)
	}
	if got := string(LegacyParams(json.RawMessage(`{"_meta":{"io.modelcontextprotocol/logLevel":"info"}}`))); got != `{}` {
		t.Errorf("LegacyParams, only modern members = %s", got)
	}
	if got := string(RequestWithID(json.RawMessage(`"b-1"`), "tools/call", json.RawMessage(`{"a":1}`))); got != `{"jsonrpc":"2.0","id":"b-1","method":"tools/call","params":{"a":1}}` {
		t.Errorf("RequestWithID = %s", got)
	}
	if got := string(SwapID(json.RawMessage(`{"jsonrpc":"2.0","id":"b-1","result":{}}`), json.RawMessage(`"b-1"`), json.RawMessage(`7`))); got != `{"jsonrpc":"2.0","id":7,"result":{}}` {
		t.Errorf("SwapID = %s", got)
	}
	// The old id in the result too: not replaced there.
	if got := string(SwapID(json.RawMessage(`{"jsonrpc":"2.0","id":"b-1","result":{"echo":"b-1"}}`), json.RawMessage(`"b-1"`), json.RawMessage(`7`))); got != `{"id":7,"jsonrpc":"2.0","result":{"echo":"b-1"}}` {
		t.Errorf("SwapID, id in the result = %s", got)
	}
}

// The fast exits skip decoding only what cannot decode to what they look
// for: encoding/json matches keys in any case and after unescaping.
func TestFastExitsSeeWhatDecoders(t *testing.T) {
	for _, m := range []string{
		`{"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"m"}}`,
		`{"jsonrpc":"2.0","id":1,"Error":{"code":-32020,"message":"m"}}`,
		`{"jsonrpc":"2.0","id":1,"\u0065rror":{"code":-32020,"message":"m"}}`,
	} {
		if got := ErrorCode(json.RawMessage(m)); got != -32020 {
			t.Errorf("ErrorCode(%s) = %d", m, got)
		}
	}
	for _, m := range []string{
		`{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{"a":{"method":"roots/list"}}}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"ResultType":"input_required","inputRequests":{"a":{"method":"roots/list"}}}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"resultType":"input\u005frequired","inputRequests":{"a":{"method":"roots/list"}}}}`,
	} {
		if _, more, err := ParseResult(json.RawMessage(m)); !more || err != nil {
			t.Errorf("ParseResult(%s) = %v, %v", m, more, err)
		}
	}
	for _, m := range []string{
		`{"jsonrpc":"2.0","id":1,"result":{"result\u0054ype":"complete"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","text":"é"}}`,
	} {
		if got := Complete(json.RawMessage(m), json.RawMessage(`1`), json.RawMessage(`1`)); strings.Contains(string(got), "complete") {
			t.Errorf("Complete(%s) = %s, want resultType gone", m, got)
		}
	}
	if !absent([]byte(`{"result":{"content":[]}}`), "input_required") || absent([]byte(`{"x":"INPUT_REQUIRED"}`), "input_required") {
		t.Error("absent")
	}
}
