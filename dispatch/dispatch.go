// Package dispatch bridges a session's messages to the upstream MCP server:
// each message a client POSTs becomes a Streamable HTTP POST handed to the
// next handler in Caddy's chain (typically reverse_proxy), and every
// message of the upstream's reply is queued on the session's stream.
package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/generation"
	"github.com/mcpsse/caddy-mcp-sse/internal/workers"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// Header names of the Streamable HTTP transport.
const (
	HeaderSessionID       = "Mcp-Session-Id"
	HeaderProtocolVersion = "Mcp-Protocol-Version"
	HeaderMethod          = "Mcp-Method"
	HeaderName            = "Mcp-Name"
)

// Dispatcher hands messages to the upstream. Its fields are set once, at
// provisioning, and read concurrently after.
type Dispatcher struct {
	// Timeout bounds one dispatched request, reply included.
	Timeout time.Duration
	// MaxMessageSize bounds one message of the upstream's reply.
	MaxMessageSize int
	// ForwardHeaders are the client request headers passed to the
	// upstream besides Authorization.
	ForwardHeaders []string
	// QueueWait is how long relaying a message may wait for room in a
	// full session queue before the session is closed as a slow consumer.
	QueueWait time.Duration
	// Listen opens the upstream's standalone event stream for each session
	// once it is initialized (see listen).
	Listen bool
	// Observe, if set, is told how long each dispatch took; UpstreamError
	// of each dispatch that produced no response, by kind.
	Observe       func(method string, d time.Duration)
	UpstreamError func(kind string)
	Logger        *zap.Logger

	// UpstreamProtocol is upstream_protocol: UpstreamAuto probes each
	// route's generation when a client initializes, UpstreamModern takes
	// the sessionless path without asking, UpstreamLegacy never takes it.
	UpstreamProtocol string
	// InputTimeout bounds each wait for a client's answers to a round of
	// input requests; MaxInputRounds bounds the rounds of one request.
	InputTimeout   time.Duration
	MaxInputRounds int
	// InputRound, if set, is told of every round of input a client
	// answered.
	InputRound func()
	// ListenStreams, if set, is told of each subscriptions/listen stream
	// opened (+1) and ended (-1).
	ListenStreams func(delta int)
	// StateChanged, if set, is told when a session's state on the
	// sessionless path changed (it was put on it; what the client
	// declared, its log level, its subscriptions). Cluster mode writes it
	// at once, not at the next renewal, so that an owner that dies right
	// after does not lose it. (A legacy session's upstream state goes
	// with the ack of the entry that made it.)
	StateChanged func(sess *session.Session)

	// workers run the dispatches: a dispatch goes deep (through
	// reverse_proxy), and a worker keeps the stack it grew for the next.
	workers workers.Pool
	// verdicts remembers each route's generation (see modern.go).
	verdicts generation.Verdicts
}

// Call is one message to hand upstream.
type Call struct {
	Session *session.Session
	Message Message
	// Post is the client's POST that carried the message: its headers,
	// URL and connection context are the template of the upstream
	// request. It is only read before the dispatch's turn is handed on.
	Post *http.Request
	// Next is the handler chain after mcp_sse that received the POST.
	Next caddyhttp.Handler
	// End, if set, is told when the dispatch lets go of the POST's body
	// and when it ends.
	End CallEnd
	// Template, if set, is Post's template made once for every message
	// of the POST (see Dispatcher.Template); otherwise Go makes one.
	Template *Template
	// Retry says the message was dispatched before, by an instance that
	// died or lost the session (cluster mode). The upstream may still
	// hold the first attempt, so a request goes under an id of its own,
	// and its answer comes back under the client's.
	Retry bool
}

// CallEnd is told how a dispatch's hold on its POST ends. An interface,
// not funcs: the caller's state for a message is one allocation with its
// methods, where each func would be one more.
type CallEnd interface {
	// LetGo says the dispatch no longer holds the POST's body (it
	// copied what it keeps of Message.Raw): the body's bytes stop
	// counting towards max_pending_bytes. A call that waits on its
	// client for input (MRTR) calls it, so what waits on a client cannot
	// starve what waits on the upstream.
	LetGo()
	// Done is called once the dispatch has ended, whichever way; it lets
	// go too.
	Done()
}

// Go reserves the message's place in the session's order and dispatches it
// in the background. Call it from the POST's handler, in the order the
// messages were posted.
func (d *Dispatcher) Go(c Call) {
	// The dispatch's state is made here, in one allocation, and its Run
	// is the worker's task: the call needs no closure and no copy of its
	// own on the heap.
	x := &exchange{d: d, call: c}
	x.wait = c.Session.Turn(&x.turn)
	// The POST's request must not be read once its handler has returned
	// (its header map is reused by the server), so the parts the upstream
	// request needs are copied now.
	if c.Template != nil {
		x.t = &c.Template.t
	} else {
		x.own.fill(c.Post, d.ForwardHeaders)
		x.t = &x.own
	}
	d.workers.Run(x)
}

// Run is the dispatch of x's call, on a worker.
func (x *exchange) Run() {
	d, c, t := x.d, &x.call, x.t
	if c.End != nil {
		defer c.End.Done()
	}
	defer x.turn.Hand()
	sess := c.Session
	select {
	case <-x.wait:
	case <-sess.Done():
		return
	}

	if d.modern(*c, t, x.turn.Hand) {
		return
	}
	isInit := c.Message.Method == "initialize"
	if isInit {
		// A client that initializes is not one the bridge initializes
		// for. What it sends right behind initialize goes once the
		// reply's header is in, which may be before the answer marks the
		// session initialized: it must join the upstream session that
		// initialize opened, not have the bridge open another.
		sess.ClaimBridgeInitialize()
	}
	switch {
	case isInit && sess.Initialized():
		endCtx, cancelEnd := context.WithTimeout(t.ctx, d.Timeout)
		d.restartUpstream(endCtx, sess, t, *c)
		cancelEnd()
	case needsInitialize(&c.Message) && !sess.Initialized() && sess.ClaimBridgeInitialize():
		// Its own timeout: the client's message keeps the whole of its.
		initCtx, cancelInit := context.WithTimeout(t.ctx, d.Timeout)
		err := d.initializeUpstream(initCtx, *c, t)
		cancelInit()
		if err != nil {
			d.Logger.Warn("initializing the upstream for a client that sent no initialize failed; dispatching its message as it is",
				zap.String("session", session.ShortID(sess.ID)), zap.String("method", c.Message.Method), zap.Error(err))
		}
	}
	ctx, cancel := context.WithTimeout(t.ctx, d.Timeout)
	defer cancel()
	x.sess, x.ctx, x.isInit = sess, ctx, isInit
	msg := &c.Message
	x.msg, x.upMsg = msg, msg
	rep := &x.rep
	rep.init(d.MaxMessageSize)
	x.gate.cancel = cancel
	rep.gate = &x.gate
	sess.WatchClose(&x.closeWatch, &x.gate)
	defer x.closeWatch.Stop()
	x.upstreamID, x.version = sess.Upstream()
	upstreamID := x.upstreamID
	if c.Retry && msg.IsRequest() {
		// The message as the upstream gets it: under an id of its own.
		retried := *msg
		retried.ID = retryID()
		retried.Raw = withID(msg.Raw, retried.ID)
		x.upMsg = &retried
	}
	rep.to = x
	request := x.request

	start := time.Now()
	err := d.serve(c.Next, rep, request)
	rep.finish()
	if d.Observe != nil {
		d.Observe(msg.Method, time.Since(start))
	}
	if ce := d.Logger.Check(zap.DebugLevel, "dispatched"); ce != nil {
		ce.Write(zap.String("session_id", sess.ID), zap.String("method", msg.Method),
			zap.Int("status", rep.status), zap.Duration("duration", time.Since(start)), zap.Error(err))
	}

	if x.answered || sess.Closed() {
		return
	}
	if !msg.IsRequest() && err == nil && rep.status < 300 && rep.bad == "" {
		// A notification or a response, taken by the upstream. Once the
		// handshake is complete, the upstream may speak on its own.
		if d.Listen && msg.Method == "notifications/initialized" && sess.StartListening() {
			go d.listen(*c, t)
		}
		return
	}
	kind, text := failure(ctx, err, rep, d.Timeout, upstreamID != "")
	if d.UpstreamError != nil {
		d.UpstreamError(kind)
	}
	if rep.status == http.StatusNotFound && upstreamID != "" {
		sess.ResetUpstream(upstreamID)
	}
	if !msg.IsRequest() {
		d.Logger.Warn("upstream did not take a message",
			zap.String("session", session.ShortID(sess.ID)), zap.String("method", msg.Method),
			zap.String("kind", kind), zap.String("error", text))
		return
	}
	data := map[string]any{"kind": kind}
	if rep.status != 0 {
		data["status"] = rep.status
	}
	// The dispatch's own context may be what ended; the error must still
	// be queued.
	if err := sess.SendAnswer(sess.Context(), ErrorResponse(msg.ID, CodeInternalError, text, data), d.QueueWait); err != nil {
		d.Logger.Debug("dropping upstream error", zap.String("session_id", sess.ID), zap.Error(err))
	}
}

// exchange is one dispatch's state on the legacy path, in one
// allocation: the reply the upstream writes to, the gate of its
// cancellation, and what the reply's callbacks read and write.
type exchange struct {
	rep  reply
	gate cancelGate
	// closeWatch has gate cancelled when the session closes.
	closeWatch session.CloseWatch
	d          *Dispatcher
	call       Call
	// wait is closed when the call's turn comes; turn hands it on to the
	// session's next message.
	wait <-chan struct{}
	turn session.Turn
	t    *requestTemplate // &own, or the template of the POST's batch
	own  requestTemplate
	sess *session.Session
	ctx  context.Context
	msg  *Message // as the client sent it: &call.Message
	// upMsg is the message as the upstream gets it (another id on a
	// retry).
	upMsg               *Message
	isInit              bool
	upstreamID, version string
	// answered is set once the response to msg has been relayed.
	answered bool
}

func (x *exchange) onHeader(status int, h http.Header) {
	if id := h.Get(HeaderSessionID); id != "" && status < 300 {
		x.sess.SetUpstreamID(id)
	}
	if x.isInit {
		// Whatever follows initialize needs the upstream session
		// id from these headers; only now may the next one go.
		x.turn.Hand()
	}
}

func (x *exchange) onMessage(m json.RawMessage) {
	before := x.answered
	m, ok := x.d.checkReplyMessage(&x.rep, x.upMsg, m, &x.answered, x.sess)
	if !ok {
		return
	}
	if x.upMsg != x.msg && x.answered != before {
		m = withID(m, x.msg.ID)
	}
	var err error
	if x.answered != before {
		err = x.sess.SendAnswer(x.ctx, m, x.d.QueueWait) // the answer itself, which the client awaits
	} else {
		err = x.sess.Send(x.ctx, m, x.d.QueueWait)
	}
	if err != nil {
		x.d.Logger.Debug("dropping upstream message", zap.String("session_id", x.sess.ID), zap.Error(err))
	}
}

// request makes the upstream request of one send.
func (x *exchange) request() *http.Request {
	var done *session.Turn
	if !x.isInit {
		// The upstream has the message once it has read the body: the
		// next message may follow, while this one's reply still runs.
		done = &x.turn
	}
	return x.t.messageRequest(x.ctx, x.upMsg, x.upstreamID, x.version, &x.rep, done)
}

// serve calls the next handler with a request made by request, and with a
// new one while the transport drops it unsent (see resend.go), at most
// maxSends times in all. Each send has a request of its own: the
// transport may still be dialing for the one before, and reading its vars.
func (d *Dispatcher) serve(next caddyhttp.Handler, rep *reply, request func() *http.Request) error {
	for sends := 1; ; sends++ {
		rep.mayResend = sends < maxSends
		req := request()
		err := d.serveOnce(next, rep, req)
		if rep.gate != nil {
			rep.gate.release()
		}
		if !rep.dropped {
			return err
		}
		rep.dropped = false
		clear(rep.header)
		d.Logger.Debug("sending again an upstream request the transport dropped unsent",
			zap.String("method", req.Method), zap.Int("sends", sends))
	}
}

// serveOnce calls the next handler. reverse_proxy aborts a reply that
// fails midway by panicking with http.ErrAbortHandler, which net/http
// recovers for requests it serves; a dispatch is not one of those, so it
// recovers here, and the failure becomes an error the client is told
// about.
func (d *Dispatcher) serveOnce(next caddyhttp.Handler, w http.ResponseWriter, r *http.Request) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				d.Logger.Error("upstream handler panicked", zap.Any("panic", v), zap.Stack("stack"))
			}
			err = fmt.Errorf("upstream reply aborted: %v", v)
		}
	}()
	return next.ServeHTTP(w, r)
}

// retryID is a request id no client sent: "mcp-sse-retry-" and 64 random
// bits.
func retryID() json.RawMessage {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return json.RawMessage(`"mcp-sse-retry-` + hex.EncodeToString(b[:]) + `"`)
}

// stateChanged tells StateChanged, if set.
func (d *Dispatcher) stateChanged(sess *session.Session) {
	if d.StateChanged != nil {
		d.StateChanged(sess)
	}
}
