// Package workers runs short functions on goroutines it keeps between
// calls.
//
// A goroutine started for each call begins with a small stack and, if the
// call goes deep (a request through Caddy's reverse_proxy does, to about
// 16 KiB), grows it by copying, three times, only to throw it away at the
// end. Under load that copying was about 5% of Caddy's CPU. A worker that
// lives on keeps the stack it grew; the runtime still halves an idle
// worker's stack at each collection, so a pool that was busy once does
// not hold its peak for ever, and a worker left idle long enough exits.
package workers

import (
	"slices"
	"sync"
	"time"
)

// DefaultIdleTimeout is how long a worker waits for another call before it
// exits, unless the pool says otherwise.
const DefaultIdleTimeout = 5 * time.Second

// Pool hands functions to idle workers, starting a new one when none is
// idle. The zero value is ready to use.
type Pool struct {
	// IdleTimeout is how long a worker waits for another call before it
	// exits; zero means DefaultIdleTimeout. Set it before the first Go.
	IdleTimeout time.Duration

	mu   sync.Mutex
	idle []*worker // the most recently parked last: its stack is warmest
}

type worker struct {
	work  chan Task
	timer *time.Timer
}

// Task is a call a worker runs. A pointer to a caller's own state can be
// one (its Run a method), where a func would take an allocation of its
// own for the closure or the method value.
type Task interface{ Run() }

// funcTask runs a func as a Task: a func value is a pointer, so it goes
// into the interface without an allocation.
type funcTask func()

func (f funcTask) Run() { f() }

// Go runs fn on a worker and returns without waiting for it. fn must not
// panic: a panic ends the process, as it would from a go statement.
func (p *Pool) Go(fn func()) { p.Run(funcTask(fn)) }

// Run runs t on a worker and returns without waiting for it, as Go.
func (p *Pool) Run(fn Task) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- fn
		return
	}
	p.mu.Unlock()
	go p.serve(&worker{work: make(chan Task, 1)}, fn)
}

func (p *Pool) serve(w *worker, fn Task) {
	for {
		fn.Run()
		fn = nil
		p.mu.Lock()
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		if w.timer == nil {
			w.timer = time.NewTimer(p.idleTimeout())
		} else {
			w.timer.Reset(p.idleTimeout())
		}
		select {
		case fn = <-w.work:
			w.timer.Stop()
		case <-w.timer.C:
			if p.leave(w) {
				return
			}
			fn = <-w.work // taken just as the timer fired: its call is on the way
		}
	}
}

// leave removes w from the idle list and reports whether it was there.
func (p *Pool) leave(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.idle {
		if x == w {
			p.idle = slices.Delete(p.idle, i, i+1)
			return true
		}
	}
	return false
}

func (p *Pool) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return DefaultIdleTimeout
}

// Idle is the number of workers waiting for a call.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
