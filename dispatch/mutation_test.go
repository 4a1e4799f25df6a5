package dispatch

import (
	"errors"
	"testing"
)

// TestParseNameExactKey: params.name is read by its exact key only. A
// tool name sent under "Name" alone is refused rather than taken for the
// name: the bridge would mirror it into Mcp-Name while an upstream SDK
// that matches keys exactly sees no name at all.
func TestParseNameExactKey(t *testing.T) {
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"add"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"NAME":"p"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"Uri":"a:"}}`,
	} {
		msgs, err := Parse([]byte(body))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Code != CodeInvalidRequest {
			name := ""
			if len(msgs) == 1 {
				name = msgs[0].Name
			}
			t.Errorf("Parse(%s): err %v, name %q; want an invalid request", body, err, name)
		}
	}
}
