package dispatch

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestHeaderValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"echo", "echo"},
		{"file:///a b", "file:///a b"},
		{" padded", "=?base64?IHBhZGRlZA==?="},
		{"héllo", "=?base64?aMOpbGxv?="},
		{"a\nb", "=?base64?YQpi?="},
		{"=?base64?abc?=", "=?base64?PT9iYXNlNjQ/YWJjPz0=?="},
	}
	for _, tc := range tests {
		if got := headerValue(tc.in); got != tc.want {
			t.Errorf("headerValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSameID(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`1`, `1`, true},
		{`1`, `1.0`, true},
		{`"1"`, `1`, false},
		{`"a"`, `"a"`, true},
		{`"a"`, `"b"`, false},
		{`2`, `3`, false},
	}
	for _, tc := range tests {
		if got := sameID(json.RawMessage(tc.a), json.RawMessage(tc.b)); got != tc.want {
			t.Errorf("sameID(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSetMessageHeaders(t *testing.T) {
	msgs, err := Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	setMessageHeaders(h, &msgs[0], "up-1", "2025-06-18", new([messageHeaders]string))
	want := map[string]string{
		"Content-Type":         "application/json",
		"Accept":               "application/json, text/event-stream",
		"Mcp-Session-Id":       "up-1",
		"Mcp-Protocol-Version": "2025-06-18",
		"Mcp-Method":           "tools/call",
		"Mcp-Name":             "echo",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}

	// initialize negotiates the version: it must not carry one.
	msgs, _ = Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
	h = http.Header{}
	setMessageHeaders(h, &msgs[0], "", "2025-06-18", new([messageHeaders]string))
	if h.Get("Mcp-Protocol-Version") != "" || h.Get("Mcp-Session-Id") != "" {
		t.Errorf("initialize headers = %v", h)
	}
}

func TestDiscoverAnswer(t *testing.T) {
	probe := func(version string) *Message {
		body := `{"jsonrpc":"2.0","id":3,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"` + version + `"}}}`
		msgs, err := Parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return &msgs[0]
	}
	legacyOnly := json.RawMessage(`{"supportedVersions":["2025-11-25","2025-06-18"],"capabilities":{}}`)

	got, ok := discoverAnswer(probe("2026-07-28"), legacyOnly)
	if !ok {
		t.Fatal("a result without the requested version was passed through")
	}
	var m struct {
		ID    int `json:"id"`
		Error struct {
			Code int `json:"code"`
			Data struct {
				Supported []string `json:"supported"`
				Requested string   `json:"requested"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != 3 || m.Error.Code != CodeUnsupportedProtocolVersion || m.Error.Data.Requested != "2026-07-28" || len(m.Error.Data.Supported) != 2 {
		t.Errorf("replacement = %s", got)
	}

	if _, ok := discoverAnswer(probe("2025-11-25"), legacyOnly); ok {
		t.Error("a result that serves the requested version was replaced")
	}
	other, _ := Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if _, ok := discoverAnswer(&other[0], legacyOnly); ok {
		t.Error("a result of another method was replaced")
	}
}
