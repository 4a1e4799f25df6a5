package session

import (
	"errors"
	"sync"
	"testing"
)

func TestMemoryStore(t *testing.T) {
	st := NewMemory()
	a, b := New(NewID(), "", 1), New(NewID(), "", 1)
	if err := st.Add(a, 2); err != nil {
		t.Fatal(err)
	}
	if err := st.Add(b, 2); err != nil {
		t.Fatal(err)
	}
	if err := st.Add(New(NewID(), "", 1), 2); !errors.Is(err, ErrTooMany) {
		t.Fatalf("Add over the limit = %v, want ErrTooMany", err)
	}
	if got, ok := st.Get(a.ID); !ok || got != a {
		t.Fatalf("Get(a) = %v, %v", got, ok)
	}
	if st.Len() != 2 {
		t.Fatalf("Len = %d, want 2", st.Len())
	}
	st.Remove(a.ID)
	st.Remove(a.ID)
	if _, ok := st.Get(a.ID); ok || st.Len() != 1 {
		t.Fatalf("after Remove: found=%v Len=%d, want gone and 1", ok, st.Len())
	}
	CloseAll(st, ReasonShutdown)
	if b.Reason() != ReasonShutdown {
		t.Errorf("CloseAll left b open (reason %q)", b.Reason())
	}
}

func TestMemoryStoreLimitUnderConcurrency(t *testing.T) {
	st := NewMemory()
	const limit, tries = 100, 1000
	var wg sync.WaitGroup
	for range tries {
		wg.Go(func() { _ = st.Add(New(NewID(), "", 1), limit) })
	}
	wg.Wait()
	if st.Len() != limit {
		t.Errorf("Len = %d after %d concurrent adds, want exactly the limit %d", st.Len(), tries, limit)
	}
	n := 0
	st.Range(func(*Session) bool { n++; return true })
	if n != limit {
		t.Errorf("Range saw %d sessions, want %d", n, limit)
	}
}

func BenchmarkStoreParallel(b *testing.B) {
	st := NewMemory()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s := New(NewID(), "", 1)
			_ = st.Add(s, 0)
			if _, ok := st.Get(s.ID); !ok {
				b.Error("lost a session")
			}
			st.Remove(s.ID)
		}
	})
}
