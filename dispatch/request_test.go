package dispatch

import (
	"net/http"
	"slices"
	"testing"
)

// TestUpstreamHeaderAppendCopies: the upstream request's header values
// share backing arrays (one allocation for the POST's headers, one for the
// message's), and a handler after mcp_sse may append to any of them
// (header_up +Name value): the append must copy, not write over the value
// of the next header in the array.
func TestUpstreamHeaderAppendCopies(t *testing.T) {
	msgs, err := Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
	if err != nil {
		t.Fatal(err)
	}
	post := http.Header{
		"Authorization":   {"Bearer a"},
		"X-Forwarded-For": {"192.0.2.1"},
		"X-Trace-Id":      {"a", "b"},
	}
	fresh := func() http.Header {
		h := cloneHeader(post, messageHeaders)
		setMessageHeaders(h, &msgs[0], "up-1", "2025-06-18", new([messageHeaders]string))
		return h
	}
	want := fresh()
	for key := range want {
		h := fresh()
		h[key] = append(h[key], "appended")
		for k, v := range want {
			if k == key {
				continue
			}
			if !slices.Equal(h[k], v) {
				t.Errorf("appending to %s changed %s: %q, want %q", key, k, h[k], v)
			}
		}
	}
}
