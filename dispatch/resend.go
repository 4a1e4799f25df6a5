package dispatch

// Sending again a request the transport dropped unsent.
//
// Go's http.Transport (go1.26 still; golang/go#9496 and #41600 were
// earlier forms of the race) gives the connection of a response without a
// body back to its pool as soon as the response is read, before that
// request's round trip returns. A cancellation of that request landing in
// between closes the connection under whichever request took it next,
// which then fails with "context canceled" though nobody canceled it, and
// reverse_proxy answers it with 499. Dispatches are canceled whenever a
// session ends, so the victim can be any session's call, or the DELETE
// that ends an upstream session. Such a request was never written: the
// transport waits for its writer to finish before a failed round trip
// returns, and reports every write it begins (httptrace WroteRequest), so
// sending it again cannot deliver it twice.

import (
	"context"
	"net/http/httptrace"
	"sync/atomic"
)

// statusClientClosed is what reverse_proxy answers when a round trip
// fails as canceled.
const statusClientClosed = 499

// maxSends bounds how often one request is sent when the transport keeps
// dropping it unsent.
const maxSends = 3

// sendWatch notes whether the transport began writing a request. It
// holds the request's trace, so that both take one allocation (the
// send's, see request.go).
type sendWatch struct {
	ctx   context.Context // the request's own, with the trace
	began atomic.Bool
	gate  *cancelGate
	trace httptrace.ClientTrace
}

// start makes w watch a new request: it returns w, whose ctx is ctx with
// a trace that records the start of every write of the request.
// gate, if not nil, is held once the request has a connection.
func (w *sendWatch) start(ctx context.Context, gate *cancelGate) *sendWatch {
	w.gate = gate
	w.trace.WroteRequest = w.wroteRequest
	if gate != nil {
		w.trace.GotConn = w.gotConn
	}
	w.ctx = httptrace.WithClientTrace(ctx, &w.trace)
	return w
}

func (w *sendWatch) wroteRequest(httptrace.WroteRequestInfo) { w.began.Store(true) }

func (w *sendWatch) gotConn(httptrace.GotConnInfo) { w.gate.hold() }

// droppedUnsent reports whether a round trip that failed as canceled
// never reached the upstream and was not canceled through its own context.
func (w *sendWatch) droppedUnsent() bool {
	return !w.began.Load() && w.ctx.Err() == nil
}
