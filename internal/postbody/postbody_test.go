package postbody

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadCountsAndReleasesOnce: a body is read whole whatever its
// announced length (small announced bodies take a buffer of their own
// size), its bytes counted for the process and the client until release,
// which gives them back once however often it is called: a POST's
// messages each let go of the body.
func TestReadCountsAndReleasesOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		announced int64 // -1: not announced
	}{
		{"small, announced", 100, 100},
		{"at the presized bound", maxPresized, maxPresized},
		{"past the presized bound", maxPresized + 1, maxPresized + 1},
		{"not announced", 3000, -1},
		{"empty", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := strings.Repeat("x", tc.size)
			r := httptest.NewRequest("POST", "/", io.NopCloser(strings.NewReader(sent)))
			r.ContentLength = tc.announced
			b := NewBudget()
			body, hold, ref := Read(httptest.NewRecorder(), r, b, Limits{MaxMessageSize: 1 << 20, MaxPending: 1 << 22}, "c")
			if ref != nil {
				t.Fatalf("refused: %v", ref)
			}
			if string(body) != sent {
				t.Fatalf("read %d bytes, want the %d sent", len(body), len(sent))
			}
			if held, client := b.Held.Load(), b.Clients.Count("c"); held != int64(tc.size) || client != tc.size {
				t.Errorf("held %d, for the client %d; want %d", held, client, tc.size)
			}
			hold.Release()
			hold.Release()
			if held, client := b.Held.Load(), b.Clients.Count("c"); held != 0 || client != 0 {
				t.Errorf("after two releases: held %d, for the client %d; want 0", held, client)
			}
		})
	}
}
