package mcpstdio

import (
	"strings"
	"testing"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
)

func TestRequestStateSealed(t *testing.T) {
	ring, other := cluster.RandomKeyring(), cluster.RandomKeyring()
	s := sealState(ring, requestState{Principal: "alice", Process: "p", Round: 1, Expires: 9})
	got, err := openState(ring, s)
	if err != nil || got.Principal != "alice" || got.Nonce == "" {
		t.Fatalf("%+v %v", got, err)
	}
	if strings.Contains(s, "alice") {
		t.Error("the principal is readable in the sealed state")
	}
	if _, err := openState(other, s); err == nil {
		t.Error("another key opens the state")
	}
	if s2 := sealState(ring, requestState{Principal: "alice"}); s2 == s {
		t.Error("two states sealed alike")
	}
}

// What waits for clients that are away is bounded for the whole process,
// not per request, and given back when released.
func TestWaitingBoundedPerProcess(t *testing.T) {
	s := &mcpSession{maxQueued: 100, keyed: newKeyedState("k", "slot")}
	a, b := &call{modern: &modernCall{}}, &call{modern: &modernCall{}}
	msg := make([]byte, 60)
	s.hold(a, msg)
	s.hold(b, msg)
	if len(a.modern.held) != 1 || len(b.modern.held) != 0 || s.keyed.waiting != 60 {
		t.Fatalf("held %d and %d, waiting %d: want the second refused", len(a.modern.held), len(b.modern.held), s.keyed.waiting)
	}
	s.release(a)
	s.hold(b, msg)
	if len(b.modern.held) != 1 || s.keyed.waiting != 60 {
		t.Errorf("after release: held %d, waiting %d", len(b.modern.held), s.keyed.waiting)
	}
}
