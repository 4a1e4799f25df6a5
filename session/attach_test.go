package session

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestJournalReplay(t *testing.T) {
	s := New(NewID(), "", 8)
	s.SetReplayLimit(3)
	a := s.Attach(nil)
	for _, m := range []string{"m1", "m2", "m3", "m4", "m5"} {
		a.Stamp([]byte(m))
	}
	frames, lost, ok := s.Replay(1)
	if !ok || lost != 1 || len(frames) != 3 || frames[0].Seq != 3 || string(frames[2].Data) != "m5" {
		t.Errorf("Replay(1) = %v, lost %d, ok %v; want m3…m5 and 1 lost", frames, lost, ok)
	}
	if frames, lost, ok := s.Replay(5); !ok || lost != 0 || len(frames) != 0 {
		t.Errorf("Replay(5) = %v, %d, %v; want nothing", frames, lost, ok)
	}
	if _, _, ok := s.Replay(6); ok {
		t.Error("Replay of a number never given is ok")
	}
	a.Flushed(4)
	if seq, frames := s.Unflushed(); seq != 4 || len(frames) != 1 || string(frames[0].Data) != "m5" {
		t.Errorf("Unflushed = %d %v, want 4 and m5", seq, frames)
	}
}

// The replay buffer holds at most DefaultReplayBytes, whatever its frame
// count, and always the newest frame.
func TestJournalBytesBound(t *testing.T) {
	s := New(NewID(), "", 8)
	s.SetReplayLimit(1000)
	a := s.Attach(nil)
	big := make([]byte, DefaultReplayBytes/3)
	for range 10 {
		a.Stamp(big)
	}
	frames, lost, _ := s.Replay(0)
	if len(frames) != 3 || lost != 7 {
		t.Errorf("held %d frames, lost %d; want 3 and 7", len(frames), lost)
	}
}

// Messages are numbered as they leave the queue, in the same step: a
// stream whose write fails mid-batch leaves every message it took in the
// journal, and one that takes over finds there all the old one took; the
// old one can take and stamp nothing more.
func TestNumberedAsTaken(t *testing.T) {
	s := New(NewID(), "", 128)
	s.SetReplayLimit(256)
	a := s.Attach(nil)
	for i := range 100 {
		if err := s.TrySend([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	got, first, closed := a.TakeNumbered(nil)
	if closed || len(got) != 100 || first != 1 {
		t.Fatalf("TakeNumbered = %d messages from %d, closed %v", len(got), first, closed)
	}
	// The write of those 100 fails before any is flushed; a client that
	// saw nothing gets all 100 again.
	if frames, lost, _ := s.Replay(0); len(frames) != 100 || lost != 0 || string(frames[99].Data) != "99" {
		t.Fatalf("Replay(0) = %d frames, %d lost", len(frames), lost)
	}
	s.TrySend([]byte("late"))
	b := s.Attach(nil)
	if _, _, closed := a.TakeNumbered(nil); !closed {
		t.Error("the old attachment still takes")
	}
	if _, ok := a.Stamp([]byte("x")); ok {
		t.Error("the old attachment still stamps")
	}
	if got, first, _ := b.TakeNumbered(nil); len(got) != 1 || first != 101 {
		t.Errorf("the new attachment took %q from %d, want late from 101", got, first)
	}
}

func TestDetachExpires(t *testing.T) {
	s := New(NewID(), "", 8)
	a := s.Attach(nil)
	var ended atomic.Int32
	done := make(chan struct{})
	if !s.Detach(a, 50*time.Millisecond, func() { ended.Add(1); close(done) }) {
		t.Fatal("Detach of the current attachment failed")
	}
	if state, _, _ := s.State(); state != StateDetached {
		t.Errorf("state %q, want detached", state)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the detached session did not end")
	}
	if s.Reason() != ReasonResumeExpired {
		t.Errorf("closed as %q, want %q", s.Reason(), ReasonResumeExpired)
	}
	if s.Attach(nil) != nil {
		t.Error("a stream attached to an expired session")
	}
	time.Sleep(20 * time.Millisecond)
	if ended.Load() != 1 {
		t.Errorf("onEnd called %d times", ended.Load())
	}
}

// A stream that attaches within the window keeps the session: it gets
// what was queued meanwhile, and the expiry never fires.
func TestReattachKeepsSession(t *testing.T) {
	// The send and the re-attach must come within the window: an attempt
	// the machine stalled past it is made again, on a new session.
	const window = 100 * time.Millisecond
	var s *Session
	var a, b *Attachment
	var ended *atomic.Int32
	for attempt := 1; b == nil; attempt++ {
		s = New(NewID(), "", 8)
		a = s.Attach(nil)
		n := new(atomic.Int32) // this attempt's: an earlier session ends apart
		ended = n
		detached := time.Now()
		s.Detach(a, window, func() { n.Add(1) })
		err := s.Send(context.Background(), []byte("while away"), time.Second)
		if err == nil {
			b = s.Attach(nil)
		}
		if b == nil && (time.Since(detached) < window || attempt == 5) {
			t.Fatalf("send (%v) or re-attach failed %s after the detach (window %s)", err, time.Since(detached), window)
		}
	}
	if _, closed := a.Take(nil); !closed {
		t.Error("the old attachment still takes messages")
	}
	select {
	case <-b.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("the new attachment was not woken for the queued message")
	}
	if got, closed := b.Take(nil); closed || len(got) != 1 || string(got[0]) != "while away" {
		t.Errorf("new attachment took %q closed %v", got, closed)
	}
	time.Sleep(300 * time.Millisecond)
	if s.Closed() || ended.Load() != 0 {
		t.Errorf("re-attached session closed (%q), onEnd called %d times", s.Reason(), ended.Load())
	}
	if state, _, n := s.State(); state != StateStreaming || n != 1 {
		t.Errorf("state %q, reattaches %d; want streaming, 1", state, n)
	}
}

// A second stream supersedes the first: the first is woken and finds its
// queue closed; messages go to the second.
func TestAttachSupersedes(t *testing.T) {
	s := New(NewID(), "", 8)
	a := s.Attach(nil)
	<-a.Ready()
	b := s.Attach(nil)
	select {
	case <-a.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("the superseded stream was not woken")
	}
	if _, closed := a.Take(nil); !closed || a.Current() {
		t.Error("the superseded attachment is still current")
	}
	if !b.Current() || s.Detach(a, time.Second, nil) {
		t.Error("the old stream's end detached the session from the new one")
	}
	s.TrySend([]byte("x"))
	if got, _ := b.Take(nil); len(got) != 1 {
		t.Errorf("new attachment took %q", got)
	}
}

// A detached session closed for another reason (admin, shutdown) ends
// once, as an expired one does.
func TestCloseWhileDetached(t *testing.T) {
	s := New(NewID(), "", 8)
	a := s.Attach(nil)
	done := make(chan struct{})
	s.Detach(a, time.Hour, func() { close(done) })
	s.Close(ReasonAdmin)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("closing a detached session did not end it")
	}
}

func TestStoreByToken(t *testing.T) {
	st := NewMemory()
	s := New(NewID(), "", 8)
	if err := st.Add(s, 0); err != nil {
		t.Fatal(err)
	}
	if got, ok := st.ByToken(s.Token()); !ok || got != s {
		t.Fatal("ByToken did not find the session")
	}
	if _, ok := st.ByToken(s.ID); ok {
		t.Error("the session id served as a token")
	}
	old := s.RotateToken()
	st.Retoken(s, old)
	if _, ok := st.ByToken(old); ok || old == s.Token() {
		t.Error("a rotated-out token still finds the session")
	}
	if got, ok := st.ByToken(s.Token()); !ok || got != s {
		t.Error("the new token does not find the session")
	}
	st.Remove(s.ID)
	if _, ok := st.ByToken(s.Token()); ok {
		t.Error("a removed session is found by token")
	}
	if len(s.Token()) < 22 || NewToken() == NewToken() {
		t.Error("tokens are short or repeat")
	}
}
