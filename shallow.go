package mcpsse

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"

	"github.com/mcpsse/caddy-mcp-sse/internal/workers"
)

// An idle stream's cost is mostly the stack of the goroutine that serves
// it, and that goroutine is called from deep in net/http and Caddy: their
// frames up to this handler take almost 6 KiB. A goroutine's stack doubles
// when a call needs more room (8 KiB to 16 KiB) and is halved again only
// while less than a quarter of it is in use, which the frames below us
// alone exceed. So one deep call from the stream's goroutine (a write
// through Caddy's response writers, a log line, the upstream request that
// ends a session) would pin 16 KiB for the stream's whole life.
//
// runShallow keeps that from happening: the stream's goroutine only waits,
// and everything that goes deep runs on a pooled worker, whose stack has
// already grown to what such calls need. The caller blocks on the result
// at once, so the worker runs next on the same processor: a call costs two
// channel handoffs, well under a microsecond; an idle stream saves 8 KiB.

// shallowCall carries one function to the goroutine that runs it and
// brings back its panic, if any. Calls are pooled so that a write costs
// no allocation.
type shallowCall struct {
	fn   func()
	done chan any
	run  func() // c.call, bound once
}

var shallowCalls = sync.Pool{New: func() any {
	c := &shallowCall{done: make(chan any, 1)}
	c.run = c.call
	return c
}}

var shallowWorkers workers.Pool

// runShallow runs fn on a pooled worker and returns when it has; a panic
// in fn is raised again here, on the caller's goroutine, so net/http and
// Caddy see it as they would have.
func runShallow(fn func()) {
	c := shallowCalls.Get().(*shallowCall)
	c.fn = fn
	shallowWorkers.Go(c.run)
	p := <-c.done
	c.fn = nil
	shallowCalls.Put(c)
	if p != nil {
		panic(p)
	}
}

func (c *shallowCall) call() {
	completed := false
	defer func() {
		var p any
		if !completed {
			p = recover()
			if p == nil { // runtime.Goexit: nothing to carry
				p = errShallowGoexit
			} else if p != http.ErrAbortHandler {
				p = &shallowPanic{value: p, stack: debug.Stack()}
			}
		}
		c.done <- p
	}()
	c.fn()
	completed = true
}

var errShallowGoexit = errors.New("mcp_sse: a shallow call exited its goroutine")

// shallowPanic is a panic raised on a shallow goroutine, with the stack
// where it happened, which the caller's own re-panic would not show.
type shallowPanic struct {
	value any
	stack []byte
}

func (p *shallowPanic) Error() string {
	return fmt.Sprintf("%v\n\npanicked on a shallow goroutine:\n%s", p.value, p.stack)
}

func (p *shallowPanic) Unwrap() error {
	err, _ := p.value.(error)
	return err
}
