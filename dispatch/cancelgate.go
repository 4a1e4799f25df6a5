package dispatch

// Holding back a session's cancellation of a request whose reply may be
// arriving.
//
// The race resend.go describes has two victims: a request the transport
// hands a connection it is about to close, before writing it (sent
// again), and one it has already written (which may have reached the
// upstream, so it cannot be sent again, and fails). Only a cancellation
// that lands while the canceled request's reply is being taken in opens
// that race. A dispatch's own context is canceled when its session ends,
// at any moment; the gate holds that cancellation back from the moment
// the request has a connection until its reply's status line has reached
// the dispatch (or the round trip is over), and applies it then. A reply
// streamed as events is still cut as soon as its header is in; a request
// still waiting for its reply's header runs on until it gets it, or until
// upstream_timeout, whose deadline the gate does not hold.

import (
	"context"
	"sync"
)

type cancelGate struct {
	mu      sync.Mutex
	cancel  context.CancelFunc
	held    bool // a request has a connection and no reply header yet
	pending bool // a cancellation came while held
}

// Cancel cancels now, or once the request in flight has its reply header.
func (g *cancelGate) Cancel() {
	g.mu.Lock()
	if g.held {
		g.pending = true
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	g.cancel()
}

// hold is called when a request gets its connection.
func (g *cancelGate) hold() {
	g.mu.Lock()
	g.held = true
	g.mu.Unlock()
}

// release is called when the reply's header is in or the round trip is
// over; a cancellation held back meanwhile is applied.
func (g *cancelGate) release() {
	g.mu.Lock()
	pending := g.pending
	g.held, g.pending = false, false
	g.mu.Unlock()
	if pending {
		g.cancel()
	}
}
