package dispatch

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParse: the POST body parser never panics, rejects with a JSON-RPC
// code of its own, and every message it accepts is a JSON object that
// decodes to what Parse said it was.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]`,
		`{"jsonrpc":"2.0","id":"x","result":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
		`{bad`, `[]`, `"s"`, `{"jsonrpc":"2.0","id":{},"method":"a"}`, ` `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := Parse(body)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || (pe.Code != CodeParseError && pe.Code != CodeInvalidRequest) {
				t.Fatalf("Parse(%q) error %v is not a ParseError with a JSON-RPC code", body, err)
			}
			return
		}
		if len(msgs) == 0 {
			t.Fatalf("Parse(%q) accepted nothing", body)
		}
		for _, m := range msgs {
			var obj map[string]json.RawMessage
			if json.Unmarshal(m.Raw, &obj) != nil {
				t.Fatalf("accepted message %q is not a JSON object", m.Raw)
			}
			var method string
			if raw, ok := obj["method"]; ok && json.Unmarshal(raw, &method) != nil {
				t.Fatalf("accepted message %q has a method that is not a string", m.Raw)
			}
			if method != m.Method {
				t.Fatalf("message %q: Method %q, body says %q", m.Raw, m.Method, method)
			}
		}
	})
}
