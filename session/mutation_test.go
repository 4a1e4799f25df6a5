package session

import (
	"testing"
	"time"
)

// TestReattachStopsOldExpiry: a re-attach stops the detachment's expiry,
// so that a later detachment gets its whole window: the first window's
// timer must not close the session while it waits in the second.
func TestReattachStopsOldExpiry(t *testing.T) {
	// The re-attach must come within the first window: an attempt the
	// machine stalled past it is made again, on a new session.
	const window = 50 * time.Millisecond
	var s *Session
	var b *Attachment
	for attempt := 1; b == nil; attempt++ {
		s = New(NewID(), "", 8)
		a := s.Attach(nil)
		detached := time.Now()
		if !s.Detach(a, window, func() {}) {
			t.Fatal("first Detach failed")
		}
		if b = s.Attach(nil); b == nil && (time.Since(detached) < window || attempt == 5) {
			t.Fatalf("re-attach %s after the detach failed (window %s)", time.Since(detached), window)
		}
	}
	ended := make(chan struct{})
	if !s.Detach(b, time.Hour, func() { close(ended) }) {
		t.Fatal("second Detach failed")
	}
	// Well past the first window: its timer, had it been left running,
	// has fired by now.
	select {
	case <-ended:
		t.Fatalf("the session closed (%q) inside its second hour-long window", s.Reason())
	case <-time.After(time.Second):
	}
	if s.Closed() {
		t.Fatalf("the session closed (%q) inside its second window", s.Reason())
	}
	s.Close(ReasonShutdown)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("onEnd not called when the detached session closed")
	}
}
