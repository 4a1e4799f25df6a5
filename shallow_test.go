package mcpsse

import (
	"errors"
	"net/http"
	"testing"
)

func TestRunShallowRunsAndWaits(t *testing.T) {
	done := false
	runShallow(func() { done = true })
	if !done {
		t.Fatal("runShallow returned before its function ran")
	}
}

func TestRunShallowCarriesPanics(t *testing.T) {
	catch := func(fn func()) (p any) {
		defer func() { p = recover() }()
		runShallow(fn)
		return nil
	}
	if p := catch(func() { panic(http.ErrAbortHandler) }); p != http.ErrAbortHandler {
		t.Fatalf("ErrAbortHandler came back as %v", p)
	}
	boom := errors.New("boom")
	p := catch(func() { panic(boom) })
	sp, ok := p.(*shallowPanic)
	if !ok || !errors.Is(sp, boom) {
		t.Fatalf("panic came back as %#v", p)
	}
	if p := catch(func() {}); p != nil {
		t.Fatalf("a call that did not panic raised %v", p)
	}
}

// BenchmarkRunShallow is the cost of the handoff: what every write of a
// stream pays for keeping its goroutine's stack small.
func BenchmarkRunShallow(b *testing.B) {
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		runShallow(func() { n++ })
	}
}
