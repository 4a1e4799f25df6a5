package dispatch

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantCode int // 0: valid
		wantN    int
	}{
		{"request", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, 0, 1},
		{"string id", `{"jsonrpc":"2.0","id":"a","method":"ping"}`, 0, 1},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, 0, 1},
		{"response", `{"jsonrpc":"2.0","id":7,"result":{}}`, 0, 1},
		{"error response", `{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"x"}}`, 0, 1},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]`, 0, 2},
		{"surrounding space", " \n{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\n", 0, 1},
		{"empty body", ``, CodeParseError, 0},
		{"not JSON", `{bad`, CodeParseError, 0},
		{"trailing garbage", `{"jsonrpc":"2.0","method":"a"} x`, CodeParseError, 0},
		{"empty batch", `[]`, CodeInvalidRequest, 0},
		{"bad batch item", `[{"jsonrpc":"2.0","method":"a"},1]`, CodeInvalidRequest, 0},
		{"not an object", `"hello"`, CodeInvalidRequest, 0},
		{"missing jsonrpc", `{"id":1,"method":"a"}`, CodeInvalidRequest, 0},
		{"wrong jsonrpc", `{"jsonrpc":"1.0","id":1,"method":"a"}`, CodeInvalidRequest, 0},
		{"empty method", `{"jsonrpc":"2.0","id":1,"method":""}`, CodeInvalidRequest, 0},
		{"method not a string", `{"jsonrpc":"2.0","id":1,"method":5}`, CodeInvalidRequest, 0},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"a"}`, CodeInvalidRequest, 0},
		{"scalar params", `{"jsonrpc":"2.0","id":1,"method":"a","params":3}`, CodeInvalidRequest, 0},
		{"neither request nor response", `{"jsonrpc":"2.0","id":1}`, CodeInvalidRequest, 0},
		{"response without id", `{"jsonrpc":"2.0","result":{}}`, CodeInvalidRequest, 0},
		{"result and error", `{"jsonrpc":"2.0","id":1,"result":{},"error":{}}`, CodeInvalidRequest, 0},
		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}`, CodeInvalidRequest, 0},
		{"duplicate id", `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`, CodeInvalidRequest, 0},
		{"duplicate jsonrpc", `{"jsonrpc":"2.0","jsonrpc":"2.0","method":"ping"}`, CodeInvalidRequest, 0},
		{"duplicate params", `{"jsonrpc":"2.0","id":1,"method":"a","params":{},"params":{}}`, CodeInvalidRequest, 0},
		{"duplicate escaped method", `{"jsonrpc":"2.0","id":1,"method":"ping","\u006dethod":"x"}`, CodeInvalidRequest, 0},
		{"duplicate tool name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"add"}}`, CodeInvalidRequest, 0},
		{"duplicate resource uri", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a:","uri":"b:"}}`, CodeInvalidRequest, 0},
		{"tool name in another case", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"add"}}`, CodeInvalidRequest, 0},
		{"method in another case", `{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call"}`, CodeInvalidRequest, 0},
		{"params in another case", `{"jsonrpc":"2.0","id":1,"method":"a","params":{},"PARAMS":{}}`, CodeInvalidRequest, 0},
		{"key folded by Unicode (long s)", "{\"jsonrpc\":\"2.0\",\"j\\u017Fonrpc\":\"1.0\",\"id\":1,\"method\":\"a\"}", CodeInvalidRequest, 0},
		{"other keys in other cases are fine", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"Name":"x"},"Extra":1}}`, 0, 1},
		{"jsonrpc in other case only", `{"JSONRPC":"2.0","id":1,"method":"a"}`, CodeInvalidRequest, 0},
		{"method in other case only", `{"jsonrpc":"2.0","id":1,"Method":"a"}`, CodeInvalidRequest, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := Parse([]byte(tc.body))
			if tc.wantCode == 0 {
				if err != nil || len(msgs) != tc.wantN {
					t.Fatalf("Parse = %d messages, %v; want %d, nil", len(msgs), err, tc.wantN)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Code != tc.wantCode {
				t.Fatalf("Parse error = %v, want code %d", err, tc.wantCode)
			}
		})
	}
}

func TestParseReadsNameAndMeta(t *testing.T) {
	tests := []struct {
		body, method, name, version string
		request                     bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`, "tools/call", "echo", "", true},
		{`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"greet"}}`, "prompts/get", "greet", "", true},
		{`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}`, "resources/read", "file:///a", "", true},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`, "tools/list", "", "2026-07-28", true},
		{`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`, "notifications/cancelled", "", "", false},
		// Keys are matched exactly (escapes decoded); a member in another
		// case is refused (TestParse).
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"echo"}}`, "tools/call", "echo", "", true},
	}
	for _, tc := range tests {
		msgs, err := Parse([]byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		m := msgs[0]
		if m.Method != tc.method || m.Name != tc.name || m.ProtocolVersion != tc.version || m.IsRequest() != tc.request {
			t.Errorf("Parse(%s) = method %q name %q version %q request %v", tc.body, m.Method, m.Name, m.ProtocolVersion, m.IsRequest())
		}
	}
}

func TestErrorResponse(t *testing.T) {
	b := ErrorResponse(json.RawMessage(`"req-1"`), CodeInternalError, "upstream down", map[string]any{"kind": "unreachable"})
	var got struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int            `json:"code"`
			Message string         `json:"message"`
			Data    map[string]any `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.JSONRPC != "2.0" || string(got.ID) != `"req-1"` || got.Error.Code != CodeInternalError ||
		got.Error.Message != "upstream down" || got.Error.Data["kind"] != "unreachable" {
		t.Errorf("ErrorResponse = %s", b)
	}
	if b := ErrorResponse(nil, CodeParseError, "x", nil); string(b) != `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}` {
		t.Errorf("ErrorResponse(nil id) = %s", b)
	}
}

func BenchmarkParse(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}
