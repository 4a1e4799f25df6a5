package generation

import (
	"encoding/json"
	"testing"
)

// TestSessionMetaFollowsChanges: a session's _meta is encoded once and
// kept for its many requests, so what changes it must drop the kept copy:
// a client that initializes again (after a reconnect, with other
// capabilities) and a logging/setLevel each reach the very next request.
func TestSessionMetaFollowsChanges(t *testing.T) {
	s := NewSession(Client{Info: json.RawMessage(`{"name":"a","version":"1"}`), Capabilities: json.RawMessage(`{}`)}, Discovery{})
	sent := func() map[string]json.RawMessage {
		t.Helper()
		out, err := Request(json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`), nil, s.Meta(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Params struct {
				Meta map[string]json.RawMessage `json:"_meta"`
			} `json:"params"`
		}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		return m.Params.Meta
	}
	check := func(when, info, caps, level string) {
		t.Helper()
		got := sent()
		if string(got[MetaClientInfo]) != info || string(got[MetaClientCapabilities]) != caps || string(got[MetaLogLevel]) != level {
			t.Errorf("%s: _meta %s %s %s, want %s %s %s", when,
				got[MetaClientInfo], got[MetaClientCapabilities], got[MetaLogLevel], info, caps, level)
		}
	}
	check("first request", `{"name":"a","version":"1"}`, `{}`, ``)
	check("second request", `{"name":"a","version":"1"}`, `{}`, ``) // from the kept copy

	s.Reinitialize(Client{Info: json.RawMessage(`{"name":"b","version":"2"}`), Capabilities: json.RawMessage(`{"sampling":{}}`)})
	check("after initialize again", `{"name":"b","version":"2"}`, `{"sampling":{}}`, ``)

	s.SetLogLevel("debug")
	check("after logging/setLevel", `{"name":"b","version":"2"}`, `{"sampling":{}}`, `"debug"`)
	s.SetLogLevel("error")
	check("after a second logging/setLevel", `{"name":"b","version":"2"}`, `{"sampling":{}}`, `"error"`)
}
