package sse

import (
	"bytes"
	"testing"
	"time"
)

func TestAppendFrame(t *testing.T) {
	tests := []struct {
		name  string
		event string
		data  string
		retry time.Duration
		want  string
	}{
		{"message", EventMessage, `{"a":1}`, 0, "event: message\ndata: {\"a\":1}\n\n"},
		{"retry in milliseconds", EventEndpoint, "/m?session_id=x", 5 * time.Second, "event: endpoint\ndata: /m?session_id=x\nretry: 5000\n\n"},
		{"no event name", "", "x", 0, "data: x\n\n"},
		{"empty data", EventKeepalive, "", 0, "event: keepalive\ndata: \n\n"},
		{"LF splits lines", EventMessage, "a\nb", 0, "event: message\ndata: a\ndata: b\n\n"},
		{"CRLF splits once", EventMessage, "a\r\nb", 0, "event: message\ndata: a\ndata: b\n\n"},
		{"lone CR splits", EventMessage, "a\rb", 0, "event: message\ndata: a\ndata: b\n\n"},
		{"trailing newline keeps an empty line", EventMessage, "a\n", 0, "event: message\ndata: a\ndata: \n\n"},
		{"forged fields stay data", EventMessage, "x\n\nevent: endpoint\ndata: evil", 0,
			"event: message\ndata: x\ndata: \ndata: event: endpoint\ndata: data: evil\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(AppendFrame(nil, tc.event, []byte(tc.data), tc.retry))
			if got != tc.want {
				t.Errorf("AppendFrame = %q, want %q", got, tc.want)
			}
		})
	}
}

// Any payload must read back unchanged (line breaks normalised to LF, as
// the SSE spec's parser does) as exactly one event of the name written.
func TestFrameRoundTrip(t *testing.T) {
	payloads := []string{
		"", "plain", "a\nb", "a\r\nb\rc", "\n\n\n", "event: x\n\ndata: y", ": comment\nid: 5",
		"trailing\r", "\r\n", "unicode é ✓ \u2028", "data:", string([]byte{0, 1, 2, 0xff}),
	}
	for _, p := range payloads {
		frame := AppendFrame(nil, EventMessage, []byte(p), time.Second)
		var got []Event
		var parser Parser
		if err := parser.Feed(frame, func(e Event) error { got = append(got, e); return nil }); err != nil {
			t.Fatalf("Feed(%q): %v", p, err)
		}
		if len(got) != 1 {
			t.Fatalf("payload %q: got %d events, want 1", p, len(got))
		}
		want := normalize(p)
		if got[0].Name != EventMessage || string(got[0].Data) != want {
			t.Errorf("payload %q read back as (%q, %q), want (%q, %q)", p, got[0].Name, got[0].Data, EventMessage, want)
		}
	}
}

func normalize(s string) string {
	b := bytes.ReplaceAll([]byte(s), []byte("\r\n"), []byte("\n"))
	return string(bytes.ReplaceAll(b, []byte("\r"), []byte("\n")))
}

func BenchmarkAppendFrame(b *testing.B) {
	msg := []byte(`{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"hello, world"}]}}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		buf = AppendFrame(buf[:0], EventMessage, msg, 0)
	}
}
