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
	setMessageHeaders(h, &msgs[0], "up-1", "2025-06-18")
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
	setMessageHeaders(h, &msgs[0], "", "2025-06-18")
	if h.Get("Mcp-Protocol-Version") != "" || h.Get("Mcp-Session-Id") != "" {
		t.Errorf("initialize headers = %v", h)
	}
}
