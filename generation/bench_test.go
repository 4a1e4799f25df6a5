package generation

import (
	"encoding/json"
	"testing"
)

// BenchmarkCallTranslation is what the bridge does per plain call on the
// sessionless path, beside the round trip: the request rewritten with
// _meta, and the final answer read (error code, input_required or not)
// and given back under the client's id.
func BenchmarkCallTranslation(b *testing.B) {
	c, err := ParseInitialize(json.RawMessage(`{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{},"sampling":{}},"clientInfo":{"name":"bench","version":"1"}}`))
	if err != nil {
		b.Fatal(err)
	}
	s := NewSession(c, Discovery{})
	raw := json.RawMessage(`{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello, world"},"_meta":{"progressToken":17}}}`)
	answer := json.RawMessage(`{"jsonrpc":"2.0","id":17,"result":{"content":[{"type":"text","text":"hello, world"}],"structuredContent":{"text":"hello, world"},"resultType":"complete"}}`)
	id := json.RawMessage(`17`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Request(raw, id, s.Meta(), nil); err != nil {
			b.Fatal(err)
		}
		if ErrorCode(answer) != 0 || ErrorCode(answer) != 0 {
			b.Fatal("error code")
		}
		if _, more, _ := ParseResult(answer); more {
			b.Fatal("input required")
		}
		_ = Complete(answer, id, id)
	}
}
