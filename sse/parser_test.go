package sse

import (
	"errors"
	"testing"
)

func TestParser(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   []Event
	}{
		{"one event", []string{"event: message\ndata: {}\n\n"}, []Event{{Name: "message", Data: []byte("{}")}}},
		{"unnamed event", []string{"data: x\n\n"}, []Event{{Data: []byte("x")}}},
		{"multi-line data", []string{"data: a\ndata: b\n\n"}, []Event{{Data: []byte("a\nb")}}},
		{"no space after colon", []string{"data:x\n\n"}, []Event{{Data: []byte("x")}}},
		{"comments and unknown fields ignored", []string{": hi\nfoo: bar\ndata: x\n\n"}, []Event{{Data: []byte("x")}}},
		{"event without data is dropped", []string{"event: ping\n\ndata: x\n\n"}, []Event{{Data: []byte("x")}}},
		{"CRLF line ends", []string{"data: x\r\n\r\n"}, []Event{{Data: []byte("x")}}},
		{"CR line ends", []string{"data: x\r\r"}, []Event{{Data: []byte("x")}}},
		{"CRLF split across chunks", []string{"data: x\r", "\n\r", "\n"}, []Event{{Data: []byte("x")}}},
		{"byte by byte", split("event: message\ndata: {\"a\":1}\n\n"), []Event{{Name: "message", Data: []byte(`{"a":1}`)}}},
		{"id field", []string{"id: 7\ndata: x\n\n"}, []Event{{Data: []byte("x"), ID: "7"}}},
		{"two events", []string{"data: 1\n\ndata: 2\n\n"}, []Event{{Data: []byte("1")}, {Data: []byte("2")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Parser
			var got []Event
			for _, c := range tc.chunks {
				if err := p.Feed([]byte(c), func(e Event) error { got = append(got, e); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d events %q, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				if got[i].Name != tc.want[i].Name || string(got[i].Data) != string(tc.want[i].Data) || got[i].ID != tc.want[i].ID {
					t.Errorf("event %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
			if p.Pending() {
				t.Error("Pending() after complete events")
			}
		})
	}
}

func split(s string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i : i+1]
	}
	return out
}

func TestParserPendingAndLimit(t *testing.T) {
	var p Parser
	if err := p.Feed([]byte("data: half"), func(Event) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if !p.Pending() {
		t.Error("a cut-off event is not Pending")
	}

	p = Parser{MaxEventSize: 8}
	err := p.Feed([]byte("data: 0123456789\n\n"), func(Event) error { return nil })
	if !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("oversized event: err = %v, want ErrEventTooLarge", err)
	}
}
