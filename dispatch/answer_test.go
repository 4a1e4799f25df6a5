package dispatch

import (
	"encoding/json"
	"testing"
)

// TestReadEnvelope: the envelope scanner reads every message as
// json.Unmarshal into the struct it replaced did: the same verdict on
// what is JSON, the same members seen, case-insensitive keys, the last of
// a repeated key winning.
func TestReadEnvelope(t *testing.T) {
	type decoded struct {
		JSONRPC *string         `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  json.RawMessage `json:"method"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
	}
	for _, m := range []string{
		`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`,
		` { "jsonrpc" : "2.0" , "id" : "a\"b" , "error" : {"code":1} } `,
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"id":7}}`,
		`{"JSONRPC":"2.0","Id":3,"RESULT":null}`,
		`{"jsonrpc":"2.0","jsonrpc":"1.0","id":1,"result":1}`,
		`{"jsonrpc":"1.0","jsonrpc":"2.0","id":1,"id":2,"result":1}`,
		`{"jsonrpc":"2.0","jsonrpc":null,"id":1,"result":1}`,
		`{"jsonrpc":"2\u002e0","id":null,"error":{}}`,
		`{"jsonrpc":2,"id":1,"result":1}`,
		`{"jsonrpc":"2.0","id":1,"result":1`,
		`{"jsonrpc":"2.0"}`,
		`{}`,
		`null`,
		`[{"jsonrpc":"2.0","id":1,"result":1}]`,
		`"2.0"`,
		`12`,
		`{"\u006aSONRPC":"2.0","i\u0064":[1],"method":"x"}`,
	} {
		var want decoded
		err := json.Unmarshal([]byte(m), &want)
		got, ok := readEnvelope([]byte(m))
		if ok != (err == nil) {
			t.Errorf("%s: ok %v, json.Unmarshal's error %v", m, ok, err)
			continue
		}
		if !ok {
			continue
		}
		if v2 := want.JSONRPC != nil && *want.JSONRPC == "2.0"; got.version2 != v2 {
			t.Errorf("%s: version2 %v, want %v", m, got.version2, v2)
		}
		if string(got.ID) != string(want.ID) {
			t.Errorf("%s: id %s, want %s", m, got.ID, want.ID)
		}
		if got.Method.set() != (want.Method != nil) || got.Result.set() != (want.Result != nil) || got.Error.set() != (want.Error != nil) {
			t.Errorf("%s: members method %v result %v error %v, want %s %s %s", m,
				got.Method, got.Result, got.Error, want.Method, want.Result, want.Error)
		}
	}
}
