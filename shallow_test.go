package mcpsse

import (
	"errors"
	"net/http"
	"testing"
)

// deep uses about n KiB of stack, as a write through net/http and Caddy's
// response writers does.
//
//go:noinline
func deep(n int) int {
	var pad [1000]byte
	pad[n%len(pad)] = byte(n)
	if n <= 1 {
		return int(pad[0])
	}
	return deep(n-1) + int(pad[n%len(pad)])
}

func TestRunShallowRunsAndWaits(t *testing.T) {
	done := false
	runShallow(func() { done = deep(6) >= 0 })
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

func BenchmarkRunShallow(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		runShallow(func() { deep(6) })
	}
}
