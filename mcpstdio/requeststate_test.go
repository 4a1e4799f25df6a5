package mcpstdio

import (
	"strings"
	"testing"
	"time"

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

func TestSpentSetBounded(t *testing.T) {
	set := newSpentSet(2)
	later := time.Now().Add(time.Hour)
	if !set.spend("a", later) || set.spend("a", later) || !set.spent("a") {
		t.Fatal("a nonce is spent once")
	}
	if !set.spend("b", later) || set.room() || set.spend("c", later) {
		t.Error("a full set of unexpired nonces takes another")
	}
	expired := newSpentSet(1)
	expired.spend("old", time.Now().Add(-time.Second))
	if !expired.room() || !expired.spend("new", later) || expired.spent("old") {
		t.Error("an expired nonce still holds its room")
	}
}
