package mcpstdio

// Input for a legacy server from a 2026-07-28 client (MRTR, SEP-2322).
// A legacy server that needs the user, the model or the roots sends a
// request of its own (elicitation/create, sampling/createMessage,
// roots/list) and waits for the answer. A 2026-07-28 client takes no
// requests: the bridge answers the client's request with an
// InputRequiredResult instead, whose requestState (sealed) lets the
// client's retry find the request, still running on the process. The
// retry's answers go to the process as the responses to its requests, and
// what the process sends for the request from then on (its final response
// above all) answers the retry.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/generation"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// modernCall is what the bridge keeps of a sessionless request beyond a
// call's; under the session's mu.
type modernCall struct {
	// clientID and clientToken are the client's id and progress token
	// (of the retry, once one came); the process knows the bridge's.
	clientID    json.RawMessage
	clientToken json.RawMessage
	// caps are the client capabilities the request's _meta declared.
	caps      json.RawMessage
	logs      bool // the request's _meta set a log level
	method    string
	name      string
	callID    json.RawMessage // the id the process knows the request by
	inputs    []input         // the server's requests not answered yet
	asked     int             // how many of inputs the client was asked for
	signalled bool            // an input item waits on the stream
	round     int
	minted    uint64
	parked    bool
	timer     *time.Timer
	held      [][]byte // notifications while parked
	final     []byte   // the response, when it came while parked
	// held's bytes and those of the server's requests in inputs, counted
	// in the process's keyedState.waiting too.
	heldBytes, inputBytes int64
}

// input is a request of the server awaiting a client's answer.
type input struct {
	size     int64 // the bytes of the server's request
	key      string
	serverID json.RawMessage
	method   string
	params   json.RawMessage
}

// inputMethods are the requests whose answers a 2026-07-28 client can
// take as input: the revision's MRTR covers these.
func inputMethod(method string) bool {
	return method == "tools/call" || method == "prompts/get" || method == "resources/read"
}

// hold keeps a notification of c for the retry, within the process's
// max_queued_bytes of what waits for clients; beyond, it is dropped
// (progress of a request whose client is away). s.mu is held.
func (s *mcpSession) hold(c *call, msg []byte) {
	m, n := c.modern, int64(len(msg))
	if s.keyed.waiting+n > s.maxQueued || len(m.held) >= maxBacklog {
		return
	}
	m.held = append(m.held, msg)
	m.heldBytes += n
	s.keyed.waiting += n
}

// release gives back what c held for its client (held notifications, the
// server's requests): they were answered, sent, or dropped. s.mu is held.
func (s *mcpSession) release(c *call) {
	m := c.modern
	s.keyed.waiting -= m.heldBytes + m.inputBytes
	m.heldBytes, m.inputBytes = 0, 0
}

// serverRequest takes a request the process sent: input for the request
// in flight that it belongs to, or, when none can take it, an error
// answered to the process at once.
func (s *mcpSession) serverRequest(msg []byte, env *outEnvelope) {
	var p struct {
		Params json.RawMessage `json:"params"`
	}
	_ = json.Unmarshal(msg, &p)
	refuse := func(text string) {
		s.sendAsync(dispatch.ErrorResponse(env.ID, codeMethodNotFound, text, nil))
	}
	capability := generation.Capability(env.Method)
	s.mu.Lock()
	c, ambiguous := s.inputTarget()
	switch {
	case capability == "":
		s.mu.Unlock()
		refuse(fmt.Sprintf("the bridge cannot relay %s to a 2026-07-28 client", env.Method))
		return
	case c == nil:
		s.mu.Unlock()
		s.logger.Warn("refusing a request of the process outside any request that can take input",
			zap.String("session", session.ShortID(s.id)), zap.String("method", env.Method), zap.ByteString("id", env.ID))
		refuse(env.Method + " outside a request: a 2026-07-28 client can only be asked for input while one of its requests runs")
		return
	case !generation.Declares(c.modern.caps, capability):
		s.mu.Unlock()
		refuse(fmt.Sprintf("the client did not declare the %s capability", capability))
		return
	case len(c.modern.inputs) >= generation.MaxInputRequests || s.keyed.waiting+int64(len(msg)) > s.maxQueued:
		s.mu.Unlock()
		refuse("too many requests for input at once")
		return
	}
	if ambiguous {
		s.logger.Warn("the process asked for input while several requests run: taken as the oldest's",
			zap.String("session", session.ShortID(s.id)), zap.String("method", env.Method))
	}
	m := c.modern
	m.minted++
	params := p.Params
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage(`{}`)
	}
	m.inputs = append(m.inputs, input{size: int64(len(msg)), key: "input-" + strconv.FormatUint(m.minted, 10),
		serverID: bytes.Clone(env.ID), method: env.Method, params: bytes.Clone(params)})
	m.inputBytes += int64(len(msg))
	s.keyed.waiting += int64(len(msg))
	st := c.st
	signal := !m.parked && !m.signalled && st != nil
	if signal {
		m.signalled = true
	}
	s.mu.Unlock()
	if signal {
		s.put(st, item{input: true})
	}
}

// codeMethodNotFound is what a legacy client answers a request it cannot
// take with; the bridge answers the process so in the client's stead.
const codeMethodNotFound = -32601

// inputTarget is the request in flight a request of the process is
// input for: the only one that can take input, else the oldest (which
// is ambiguous: stdio carries no hint of which request asked). s.mu is
// held.
func (s *mcpSession) inputTarget() (target *call, ambiguous bool) {
	n := 0
	for _, c := range s.calls {
		if c.modern == nil || !inputMethod(c.modern.method) {
			continue
		}
		n++
		if target == nil || c.seq < target.seq {
			target = c
		}
	}
	return target, n > 1
}

// issueInput makes the InputRequiredResult that answers c's stream, and
// parks c until its retry or input_timeout; ok is false when there is
// nothing to ask any more (the request was answered or cancelled
// meanwhile).
func (s *mcpSession) issueInput(h *Handler, c *call) (answer []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := c.modern
	m.signalled = false
	if m.parked || c.st == nil || s.calls[c.key] != c || len(m.inputs) == 0 {
		return nil, false
	}
	timeout := time.Duration(h.InputTimeout)
	m.round++
	m.asked = len(m.inputs)
	reqs := make([]generation.InputRequest, len(m.inputs))
	ids := make(map[string]json.RawMessage, len(m.inputs))
	for i, in := range m.inputs {
		reqs[i] = generation.InputRequest{Key: in.key, Method: in.method, Params: in.params}
		ids[in.key] = in.serverID
	}
	state := sealState(h.stateRing, requestState{
		Principal: s.keyed.key, Process: s.id, Call: m.callID, Round: m.round, Inputs: ids,
		Expires: time.Now().Add(timeout).Unix() + 1,
	})
	c.st.pending--
	c.st = nil
	m.parked = true
	s.keyed.parked[c.key] = c
	round := m.round
	m.timer = time.AfterFunc(timeout, func() { s.inputExpired(c, round, timeout) })
	metrics.inputRounds.Inc()
	return generation.InputRequiredResult(m.clientID, reqs, state), true
}

// failInputs answers the server's requests with an error. s.mu may be
// held: the writes are asynchronous.
func (s *mcpSession) failInputs(inputs []input, text string) {
	for _, in := range inputs {
		s.sendAsync(dispatch.ErrorResponse(in.serverID, dispatch.CodeInternalError, text, nil))
	}
}

// inputExpired ends the wait for a retry that did not come within
// input_timeout: the bridge answers the server's requests with an error
// itself, and cancels the request, whose answer no one awaits.
func (s *mcpSession) inputExpired(c *call, round int, timeout time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := c.modern
	if !m.parked || m.round != round {
		return
	}
	delete(s.keyed.parked, c.key)
	m.parked = false
	s.failInputs(m.inputs, fmt.Sprintf("the client did not answer within %s (input_timeout)", timeout))
	m.inputs, m.held, m.final = nil, nil, nil
	s.release(c)
	if s.calls[c.key] == c {
		// No one awaits its answer: the request ends, and leaves room
		// (max_inflight, idle_timeout) for others.
		s.removeCall(c)
		note, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "notifications/cancelled",
			"params": map[string]any{"requestId": m.callID, "reason": "no retry within input_timeout"}})
		s.sendAsync(note)
	}
	metrics.inputTimeouts.Inc()
	s.logger.Info("no retry within input_timeout: the server's requests were answered with an error",
		zap.String("session", session.ShortID(s.id)), zap.String("method", m.method), zap.Duration("input_timeout", timeout))
}

// resume attaches a retry to the parked request its requestState names,
// once: the answers, written to the process as the responses to its
// requests, and what the retry's stream is to carry first (notifications
// held meanwhile, and the response if it came). It fails, having written
// nothing, when the request does not await this state. Once is by
// construction: the state names the request and its round, and the retry
// takes the request out of parked under s.mu, so a second retry finds no
// request awaiting that round (one asking again awaits the next). No set
// of spent states is kept: bounded, one principal retrying fast would
// fill it and stop every other's input rounds.
func (s *mcpSession) resume(h *Handler, state requestState, msg dispatch.Message, meta generation.Meta, retry generation.Retry, st *stream) (c *call, first [][]byte, final []byte, err error) {
	s.mu.Lock()
	c = s.keyed.parked[idKey(state.Call)]
	switch {
	case s.ended:
		s.mu.Unlock()
		return nil, nil, nil, errStateRefused("the process that held the request has ended")
	case c == nil || c.modern.round != state.Round:
		s.mu.Unlock()
		return nil, nil, nil, errStateRefused("requestState already used, or no request awaits it any more (answered, cancelled, timed out)")
	case c.modern.method != msg.Method || c.modern.name != msg.Name:
		s.mu.Unlock()
		return nil, nil, nil, errStateRefused("the retry's method or name differs from the request that asked for input")
	}
	m := c.modern
	delete(s.keyed.parked, c.key)
	m.parked = false
	m.timer.Stop()
	m.clientID = bytes.Clone(msg.ID)
	m.clientToken = bytes.Clone(progressToken(msg.Raw))
	m.caps = meta.Capabilities
	m.logs = meta.LogLevel != ""
	var answers [][]byte
	for _, in := range m.inputs[:m.asked] {
		if r, ok := retry.Responses[in.key]; ok {
			answers = append(answers, generation.Response(in.serverID, r))
		} else {
			answers = append(answers, dispatch.ErrorResponse(in.serverID, dispatch.CodeInternalError,
				"the client's retry carries no answer to "+in.key, nil))
		}
	}
	answered := int64(0)
	for _, in := range m.inputs[:m.asked] {
		answered += in.size
	}
	m.inputs = m.inputs[m.asked:]
	m.asked = 0
	first, m.held = m.held, nil
	s.keyed.waiting -= m.heldBytes + answered
	m.heldBytes, m.inputBytes = 0, m.inputBytes-answered
	final, m.final = m.final, nil
	if final == nil {
		c.st = st
		st.pending = 1
		if len(m.inputs) > 0 {
			// The server asked for more while the client was away.
			m.signalled = true
			st.out <- item{input: true} // an empty stream has room
		}
	} else {
		final = generation.WithID(final, m.clientID)
	}
	kept := first[:0]
	for _, n := range first {
		if out := s.forClient(c, n, envelopeOf(n)); out != nil {
			kept = append(kept, out)
		}
	}
	first = kept
	s.mu.Unlock()
	for _, a := range answers {
		if err := s.send(a); err != nil {
			h.stdinFailed(s, err)
			break
		}
	}
	return c, first, final, nil
}

func envelopeOf(msg []byte) *outEnvelope {
	var env outEnvelope
	_ = json.Unmarshal(msg, &env)
	return &env
}

// errStateRefused is a retry whose requestState the bridge does not take.
type errStateRefused string

func (e errStateRefused) Error() string { return string(e) }

// cancelCall ends a request whose client closed its stream: the process
// is told (notifications/cancelled), and its requests for input for the
// request are answered with an error.
func (s *mcpSession) cancelCall(c *call, st *stream, why string) {
	s.mu.Lock()
	if c.st != st || s.calls[c.key] != c {
		s.mu.Unlock()
		return
	}
	s.removeCall(c)
	c.st = nil
	inputs := c.modern.inputs
	c.modern.inputs = nil
	s.release(c)
	s.failInputs(inputs, "the request was cancelled")
	s.mu.Unlock()
	note, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "notifications/cancelled",
		"params": map[string]any{"requestId": c.modern.callID, "reason": why}})
	s.sendAsync(note)
}
