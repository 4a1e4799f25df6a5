package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestSendAndSlowConsumer(t *testing.T) {
	ctx := context.Background()
	s := New(NewID(), "127.0.0.1:1", 2)
	for i := range 2 {
		if err := s.Send(ctx, []byte("m"), time.Millisecond); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := s.Send(ctx, []byte("m"), 10*time.Millisecond); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Send to a queue that stays full = %v, want ErrQueueFull", err)
	}
	if !s.Closed() || s.Reason() != ReasonSlowConsumer {
		t.Errorf("after overflow: closed=%v reason=%q, want closed as %q", s.Closed(), s.Reason(), ReasonSlowConsumer)
	}
	if err := s.Send(ctx, []byte("m"), time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Errorf("Send to a closed session = %v, want ErrClosed", err)
	}
	if in, out := s.Counts(); in != 0 || out != 2 {
		t.Errorf("Counts = %d, %d; want 0, 2", in, out)
	}
}

func TestTrySend(t *testing.T) {
	s := New(NewID(), "", 1)
	if err := s.TrySend([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.TrySend([]byte("b")); !errors.Is(err, ErrQueueFull) || s.Reason() != ReasonSlowConsumer {
		t.Fatalf("TrySend to a full queue = %v (reason %q)", err, s.Reason())
	}
}

// TestBackpressure: senders wait while the queue is full and go on as the
// reader takes; a burst many times the queue's size passes whole and in
// order.
func TestBackpressure(t *testing.T) {
	const size, total, senders = 4, 2000, 3
	s := New(NewID(), "", size)
	a := s.Attach(nil)
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			for i := range total / senders {
				if err := s.Send(context.Background(), []byte(fmt.Sprintf("%d-%d", w, i)), 5*time.Second); err != nil {
					t.Errorf("sender %d message %d: %v", w, i, err)
					return
				}
			}
		})
	}
	next := make([]int, senders)
	got := 0
	var batch [][]byte
	for got < total/senders*senders {
		select {
		case <-a.Ready():
		case <-time.After(10 * time.Second):
			t.Fatalf("stalled after %d messages", got)
		}
		batch, _ = a.Take(batch[:0])
		if len(batch) > size {
			t.Fatalf("took %d messages from a queue of %d", len(batch), size)
		}
		for _, m := range batch {
			var w, i int
			fmt.Sscanf(string(m), "%d-%d", &w, &i)
			if i != next[w] {
				t.Fatalf("sender %d: got message %d, want %d", w, i, next[w])
			}
			next[w]++
			got++
		}
	}
	wg.Wait()
	if s.Closed() {
		t.Errorf("session closed as %q during a burst its reader kept up with", s.Reason())
	}
}

func TestSendGivesUpWithContext(t *testing.T) {
	s := New(NewID(), "", 1)
	_ = s.TrySend([]byte("fill"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Send(ctx, []byte("m"), time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled context = %v", err)
	}
	if s.Closed() {
		t.Error("a sender giving up closed the session")
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
	turns := make([]Turn, n)
	var waits []<-chan struct{}
	for i := range n {
		waits = append(waits, s.Turn(&turns[i]))
	}
	for i := n - 1; i >= 0; i-- { // start the holders in reverse
		go func(i int) {
			<-waits[i]
			order <- i
			turns[i].Hand()
			turns[i].Hand() // handing on twice is harmless
		}(i)
	}
	for want := range n {
		select {
		case got := <-order:
			if got != want {
				t.Fatalf("turn %d ran in place %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("turn %d not granted within 10s", want)
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

// Closing a session wakes its stream writer through Ready, and Take then
// reports it closed: the writer waits on nothing else.
func TestCloseWakesReady(t *testing.T) {
	s := New(NewID(), "127.0.0.1:1", 8)
	a := s.Attach(nil)
	if _, closed := a.Take(nil); closed {
		t.Fatal("a new session reports closed")
	}
	<-a.Ready() // Attach's own wake-up
	s.Close(ReasonAdmin)
	select {
	case <-a.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Ready")
	}
	if _, closed := a.Take(nil); !closed {
		t.Fatal("Take after Close does not report closed")
	}
}

// SendAnswer goes to the deliverer when it takes the message, and to the
// queue when it does not; Send always queues, so bursts stay batched.
func TestSendAnswerDelivers(t *testing.T) {
	s := New(NewID(), "127.0.0.1:1", 8)
	var delivered [][]byte
	free := true
	a := s.Attach(func(m []byte) (bool, error) {
		if !free {
			return false, nil
		}
		delivered = append(delivered, m)
		return true, nil
	})
	ctx := context.Background()
	if err := s.SendAnswer(ctx, []byte("a1"), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctx, []byte("n1"), time.Second); err != nil {
		t.Fatal(err)
	}
	free = false
	if err := s.SendAnswer(ctx, []byte("a2"), time.Second); err != nil {
		t.Fatal(err)
	}
	if len(delivered) != 1 || string(delivered[0]) != "a1" {
		t.Errorf("delivered %q, want only a1", delivered)
	}
	queued, _ := a.Take(nil)
	if len(queued) != 2 || string(queued[0]) != "n1" || string(queued[1]) != "a2" {
		t.Errorf("queued %q, want n1 and a2", queued)
	}
	if _, out := s.Counts(); out != 3 {
		t.Errorf("messages out = %d, want 3", out)
	}
}
