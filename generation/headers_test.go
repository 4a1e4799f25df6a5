package generation

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestFilterToolsAndParamHeaders(t *testing.T) {
	list := `{"jsonrpc":"2.0","id":1,"result":{"tools":[` +
		`{"name":"ok","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"integer","x-mcp-header":"N"},"deep":{"type":"object","properties":{"flag":{"type":"boolean","x-mcp-header":"Flag"}}}}}},` +
		`{"name":"plain","inputSchema":{"type":"object"}},` +
		`{"name":"on-object","inputSchema":{"type":"object","properties":{"o":{"type":"object","x-mcp-header":"O"}}}},` +
		`{"name":"bad-name","inputSchema":{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"A B"}}}},` +
		`{"name":"empty","inputSchema":{"type":"object","properties":{"a":{"type":"string","x-mcp-header":""}}}},` +
		`{"name":"twice","inputSchema":{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"X"},"b":{"type":"string","x-mcp-header":"x"}}}}` +
		`],"nextCursor":"c"}}`
	out, bindings, dropped := FilterTools(json.RawMessage(list))
	want := `{"id":1,"jsonrpc":"2.0","result":{"nextCursor":"c","tools":[{"name":"ok","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"integer","x-mcp-header":"N"},"deep":{"type":"object","properties":{"flag":{"type":"boolean","x-mcp-header":"Flag"}}}}}},{"name":"plain","inputSchema":{"type":"object"}}]}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	if !reflect.DeepEqual(dropped, []string{"on-object", "bad-name", "empty", "twice"}) || len(bindings) != 1 || len(bindings["ok"]) != 3 {
		t.Errorf("dropped %v bindings %v", dropped, bindings)
	}
	// Nothing to drop: the same bytes.
	clean := `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"plain","inputSchema":{"type":"object"}}]}}`
	if out, _, dropped := FilterTools(json.RawMessage(clean)); string(out) != clean || dropped != nil {
		t.Errorf("clean list changed: %s", out)
	}

	h := ParamHeaders(bindings["ok"], json.RawMessage(`{"name":"ok","arguments":{"region":"Zürich","n":42,"deep":{"flag":true}}}`))
	if !reflect.DeepEqual(h, map[string]string{"Mcp-Param-Region": "=?base64?WsO8cmljaA==?=", "Mcp-Param-N": "42", "Mcp-Param-Flag": "true"}) {
		t.Errorf("headers %v", h)
	}
	h = ParamHeaders(bindings["ok"], json.RawMessage(`{"name":"ok","arguments":{"region":null,"n":1.5,"deep":{}}}`))
	if len(h) != 0 {
		t.Errorf("absent, null and non-integer arguments gave headers %v", h)
	}
	for in, want := range map[string]string{"eu-west": "eu-west", " x": "=?base64?IHg=?=", "=?base64?x?=": "=?base64?PT9iYXNlNjQ/eD89?=", "": ""} {
		if got := HeaderValue(in); got != want {
			t.Errorf("HeaderValue(%q) = %q, want %q", in, got, want)
		}
	}
	if ErrorCode(json.RawMessage(`{"error":{"code":-32020,"message":"m"}}`)) != CodeHeaderMismatch || ErrorCode(json.RawMessage(`{"result":{}}`)) != 0 {
		t.Error("ErrorCode")
	}
}
