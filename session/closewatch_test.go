package session

import (
	"sync"
	"sync/atomic"
	"testing"
)

type countCancel struct{ n atomic.Int32 }

func (c *countCancel) Cancel() { c.n.Add(1) }

// TestCloseWatch: Close cancels what watches the session, once each, and
// not what stopped watching; a watch begun after Close cancels at once.
func TestCloseWatch(t *testing.T) {
	s := New(NewID(), "", 1)
	var ws [4]CloseWatch
	var cs [4]countCancel
	for i := range ws {
		s.WatchClose(&ws[i], &cs[i])
	}
	ws[0].Stop() // the last one in
	ws[2].Stop() // one in the middle
	ws[2].Stop() // stopping twice is harmless
	s.Close("test")
	s.Close("again")
	for i, want := range []int32{0, 1, 0, 1} {
		if got := cs[i].n.Load(); got != want {
			t.Errorf("watch %d cancelled %d times, want %d", i, got, want)
		}
	}
	ws[1].Stop() // after Close: harmless

	var late CloseWatch
	var lc countCancel
	s.WatchClose(&late, &lc)
	if lc.n.Load() != 1 {
		t.Errorf("a watch begun after Close cancelled %d times, want 1", lc.n.Load())
	}
	late.Stop()
}

// TestCloseWatchConcurrent: watches begun and stopped while the session
// closes are each cancelled at most once, and those still watching at
// the end exactly once.
func TestCloseWatchConcurrent(t *testing.T) {
	s := New(NewID(), "", 1)
	const n = 64
	var ws [n]CloseWatch
	var cs [n]countCancel
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.WatchClose(&ws[i], &cs[i])
			if i%2 == 0 {
				ws[i].Stop()
			}
		}()
	}
	s.Close("test")
	wg.Wait()
	for i := range n {
		got := cs[i].n.Load()
		if got > 1 || (i%2 == 1 && got != 1) {
			t.Errorf("watch %d cancelled %d times", i, got)
		}
	}
}
