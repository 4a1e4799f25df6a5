package generation

import (
	"encoding/json"
	"testing"
)

func TestSnapshotRestore(t *testing.T) {
	_, d := Verdict(json.RawMessage(`{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{"listChanged":true}},"instructions":"hi","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s","version":"1"}}}}`))
	s := NewSession(Client{ProtocolVersion: "2025-06-18", Info: json.RawMessage(`{"name":"c","version":"1"}`), Capabilities: json.RawMessage(`{"sampling":{}}`)}, d)
	s.SetLogLevel("debug")
	if _, err := s.Subscribe("test://a<&>"); err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	want := `{"v":"2025-06-18","i":{"name":"c","version":"1"},"c":{"sampling":{}},"l":"debug","s":["test://a<&>"],"d":{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{"listChanged":true}},"instructions":"hi","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s","version":"1"}}}}`
	if snap != want {
		t.Errorf("got  %s\nwant %s", snap, want)
	}
	r, err := Restore(snap)
	if err != nil {
		t.Fatal(err)
	}
	if r.Snapshot() != snap {
		t.Errorf("restored %s", r.Snapshot())
	}
	if string(r.ListenRequest(json.RawMessage(`1`))) != string(s.ListenRequest(json.RawMessage(`1`))) {
		t.Error("the restored session asks for another listen stream")
	}
	select {
	case <-r.Changed():
		t.Error("restoring signalled a change")
	default:
	}
	if _, err := Restore("{"); err == nil {
		t.Error("a broken snapshot restored")
	}
}
