package generation

import (
	"strings"
	"testing"
	"time"
)

// Unsubscribing gives the URI's bytes back: a session that subscribes and
// unsubscribes a large URI over and over is never refused.
func TestUnsubscribeReturnsBytes(t *testing.T) {
	s := NewSession(Client{}, Discovery{})
	big := "test://" + strings.Repeat("x", MaxSubscriptionBytes/2)
	for i := range 4 {
		if _, err := s.Subscribe(big); err != nil {
			t.Fatalf("subscription %d after as many unsubscriptions: %v", i, err)
		}
		if !s.Unsubscribe(big) {
			t.Fatalf("unsubscription %d", i)
		}
	}
}

// A verdict past its TTL is not used: the next session probes again.
func TestVerdictExpires(t *testing.T) {
	fresh := &Verdicts{}
	fresh.Set("h/mcp", true, Discovery{Instructions: "x"})
	if modern, d, ok := fresh.Get("h/mcp"); !ok || !modern || d.Instructions != "x" {
		t.Fatalf("fresh verdict: %v %v %+v", ok, modern, d)
	}
	fresh.Forget("h/mcp")
	if _, _, ok := fresh.Get("h/mcp"); ok {
		t.Error("a forgotten verdict is still used")
	}
	// A negative TTL makes every verdict stale at once, without waiting.
	stale := &Verdicts{TTL: -time.Second}
	stale.Set("h/mcp", true, Discovery{})
	if _, _, ok := stale.Get("h/mcp"); ok {
		t.Error("a verdict past its TTL is still used")
	}
}
