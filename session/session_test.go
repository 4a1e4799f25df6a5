package session

import (
	"errors"
	"testing"
)

func TestSendAndSlowConsumer(t *testing.T) {
	s := New(NewID(), "127.0.0.1:1", 2)
	for i := range 2 {
		if err := s.Send([]byte("m")); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := s.Send([]byte("m")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Send to a full queue = %v, want ErrQueueFull", err)
	}
	if !s.Closed() || s.Reason() != ReasonSlowConsumer {
		t.Errorf("after overflow: closed=%v reason=%q, want closed as %q", s.Closed(), s.Reason(), ReasonSlowConsumer)
	}
	if err := s.Send([]byte("m")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send to a closed session = %v, want ErrClosed", err)
	}
	if in, out := s.Counts(); in != 0 || out != 2 {
		t.Errorf("Counts = %d, %d; want 0, 2", in, out)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	s := New(NewID(), "", 1)
	s.Close(ReasonAdmin)
	s.Close(ReasonShutdown)
	if s.Reason() != ReasonAdmin {
		t.Errorf("Reason = %q, want the first reason %q", s.Reason(), ReasonAdmin)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed")
	}
	if s.Context().Err() == nil {
		t.Error("Context not cancelled")
	}
}

// Turns are granted in the order they were taken, whatever order their
// holders run in.
func TestTurnOrder(t *testing.T) {
	s := New(NewID(), "", 1)
	const n = 50
	order := make(chan int, n)
	var handeds []func()
	var waits []<-chan struct{}
	for range n {
		w, h := s.Turn()
		waits, handeds = append(waits, w), append(handeds, h)
	}
	for i := n - 1; i >= 0; i-- { // start the holders in reverse
		go func(i int) {
			<-waits[i]
			order <- i
			handeds[i]()
			handeds[i]() // handing on twice is harmless
		}(i)
	}
	for want := range n {
		if got := <-order; got != want {
			t.Fatalf("turn %d ran in place %d", got, want)
		}
	}
}

func TestUpstreamState(t *testing.T) {
	s := New(NewID(), "", 1)
	s.SetUpstreamID("up-1")
	s.SetProtocolVersion("2025-06-18")
	s.ResetUpstream("up-other") // stale: must not forget up-1
	if id, v := s.Upstream(); id != "up-1" || v != "2025-06-18" {
		t.Fatalf("Upstream = %q %q", id, v)
	}
	s.ResetUpstream("up-1")
	if id, v := s.Upstream(); id != "" || v != "" {
		t.Errorf("after reset Upstream = %q %q, want empty", id, v)
	}
}
