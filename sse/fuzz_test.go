package sse

import (
	"bytes"
	"testing"
)

// FuzzFrameRoundTrip: any payload encodes to a frame that a spec-following
// parser reads back as exactly one event of the name written, with the
// payload unchanged but for line breaks normalised to LF.
func FuzzFrameRoundTrip(f *testing.F) {
	for _, s := range []string{"", "{}", "a\nb", "a\r\nb\rc", "\n\n", "event: x\n\ndata: y", ": c", "\r", "id: 1\nretry: 5"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		frame := AppendFrame(nil, EventMessage, payload, 0)
		var got []Event
		var p Parser
		if err := p.Feed(frame, func(e Event) error { got = append(got, e); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("payload %q: %d events", payload, len(got))
		}
		want := bytes.ReplaceAll(payload, []byte("\r\n"), []byte("\n"))
		want = bytes.ReplaceAll(want, []byte("\r"), []byte("\n"))
		if got[0].Name != EventMessage || !bytes.Equal(got[0].Data, want) {
			t.Fatalf("payload %q read back as %q %q", payload, got[0].Name, got[0].Data)
		}
		if p.Pending() {
			t.Fatal("parser left pending after a whole frame")
		}
	})
}

// FuzzParser: the upstream reply parser reads any input the same whether
// it arrives whole or cut at any point, and never panics.
func FuzzParser(f *testing.F) {
	f.Add([]byte("event: message\ndata: {}\n\n"), 3)
	f.Add([]byte("data: a\r\ndata: b\r\n\r\n"), 9)
	f.Add([]byte("data: x\r\r: c\nid: 7\ndata\n\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		whole := parseAll(t, in)
		if len(in) == 0 {
			cut = 0
		} else {
			cut = ((cut % len(in)) + len(in)) % len(in)
		}
		split := parseAll(t, in[:cut], in[cut:])
		if len(whole) != len(split) {
			t.Fatalf("%q: %d events whole, %d cut at %d", in, len(whole), len(split), cut)
		}
		for i := range whole {
			if whole[i].Name != split[i].Name || !bytes.Equal(whole[i].Data, split[i].Data) || whole[i].ID != split[i].ID {
				t.Fatalf("%q: event %d differs when cut at %d: %+v vs %+v", in, i, cut, whole[i], split[i])
			}
		}
	})
}

func parseAll(t *testing.T, chunks ...[]byte) []Event {
	t.Helper()
	var p Parser
	var got []Event
	for _, c := range chunks {
		if err := p.Feed(c, func(e Event) error { got = append(got, e); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return got
}
