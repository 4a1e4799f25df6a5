package workers

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every call runs once, calls overlap when they must, and the workers
// are reused rather than started anew for each call.
func TestPoolRunsEveryCallAndReusesWorkers(t *testing.T) {
	// No idle worker may leave while the test counts them: on a loaded
	// machine the 10,000 calls below may take longer than the default 5s,
	// and the workers idle meanwhile would have gone when waitIdle counts
	// 8.
	p := Pool{IdleTimeout: time.Hour}
	const calls = 10000
	var ran atomic.Int64
	var wg sync.WaitGroup
	gate := make(chan struct{})
	// Eight calls that block until released need eight workers at once.
	for range 8 {
		wg.Add(1)
		p.Go(func() { <-gate; ran.Add(1); wg.Done() })
	}
	close(gate)
	waitGroup(t, &wg)
	waitIdle(t, &p, 8)
	before := runtime.NumGoroutine()
	done := make(chan struct{}, 1)
	for i := range calls {
		p.Go(func() { ran.Add(1); done <- struct{}{} })
		select { // one at a time: one idle worker always suffices
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d did not run within 10s", i)
		}
	}
	if got := ran.Load(); got != calls+8 {
		t.Fatalf("%d calls ran, want %d", got, calls+8)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines %d before sequential calls, %d after: workers were not reused", before, after)
	}
	waitIdle(t, &p, 8) // the 8 started, no more

}

// Idle workers exit after IdleTimeout.
func TestPoolIdleWorkersExit(t *testing.T) {
	p := Pool{IdleTimeout: 20 * time.Millisecond}
	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for range 4 {
		wg.Add(1)
		p.Go(func() { <-gate; wg.Done() })
	}
	close(gate)
	waitGroup(t, &wg)
	deadline := time.Now().Add(5 * time.Second)
	for p.Idle() > 0 || runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("after the idle timeout: %d idle workers, goroutines %d (started with %d)", p.Idle(), runtime.NumGoroutine(), base)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The pool still works after its workers left.
	done := make(chan struct{})
	p.Go(func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a call after the workers left did not run within 10s")
	}
}

// waitGroup waits for wg, failing the test after 10s: a call the pool
// lost would otherwise hang it.
func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("calls still unfinished after 10s")
	}
}

func waitIdle(t *testing.T, p *Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Idle() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle workers, want %d", p.Idle(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkPool is a call that needs a deep stack on a pooled worker;
// BenchmarkGo the same on a goroutine started for it.
func BenchmarkPool(b *testing.B) {
	var p Pool
	done := make(chan struct{})
	for b.Loop() {
		p.Go(func() { deep(12); done <- struct{}{} })
		<-done
	}
}

func BenchmarkGo(b *testing.B) {
	done := make(chan struct{})
	for b.Loop() {
		go func() { deep(12); done <- struct{}{} }()
		<-done
	}
}

// deep uses about n KiB of stack.
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
