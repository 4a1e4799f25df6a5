package mcpstdio

// Where a message from a sessionless process goes. The process serves
// requests of many POSTs (of one principal), each under an id the bridge
// gave it: a response goes back to its POST under the client's id;
// progress to the request whose token it names; a request of the server
// becomes input a client is asked for (inputs.go); list changes and
// resource updates go to the listen streams that asked for them; log
// messages to a request that set a log level.

import (
	"encoding/json"
	"errors"

	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/generation"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// routeKeyed delivers one message of a sessionless process. It runs on the
// process's stdout reader, in order.
func (s *mcpSession) routeKeyed(msg []byte, env *outEnvelope) {
	isRequest := env.Method != "" && env.ID != nil && string(env.ID) != "null"
	switch {
	case env.Method == "":
		s.routeResponse(msg, env)
	case isRequest:
		s.serverRequest(msg, env)
	case env.Method == "notifications/tools/list_changed" || env.Method == "notifications/prompts/list_changed" ||
		env.Method == "notifications/resources/list_changed" || env.Method == "notifications/resources/updated":
		if env.Method == "notifications/tools/list_changed" && s.keyed.relisting.CompareAndSwap(false, true) {
			// One listing at a time, however many changes come.
			go func() {
				defer s.keyed.relisting.Store(false)
				s.learnTools(s.sendTimeout)
			}()
		}
		s.toListeners(msg, env.Method)
	default:
		s.routeNotification(msg, env)
	}
}

// routeResponse hands a response to the bridge's own request awaiting it,
// or to its client's POST under the client's id; one for a request
// awaiting input is kept for the retry.
func (s *mcpSession) routeResponse(msg []byte, env *outEnvelope) {
	s.mu.Lock()
	if ch, ok := s.keyed.internal[idKey(env.ID)]; ok {
		delete(s.keyed.internal, idKey(env.ID))
		s.mu.Unlock()
		ch <- msg // buffered, and the only send
		return
	}
	c := s.calls[idKey(env.ID)]
	if c == nil || c.modern == nil {
		s.mu.Unlock()
		s.logger.Debug("dropping a response to no request in flight",
			zap.String("session", session.ShortID(s.id)), zap.ByteString("id", env.ID))
		return
	}
	s.removeCall(c)
	m := c.modern
	if m.method == "tools/list" {
		var bindings map[string][]generation.Binding
		msg, bindings, _ = generation.FilterTools(msg)
		s.keyed.tools.Learn(bindings)
	}
	if m.parked {
		// Answered while its client is away answering input: the retry
		// gets it.
		m.final = msg
		s.mu.Unlock()
		return
	}
	st := c.st
	if st == nil {
		s.mu.Unlock() // its client went away, or never retried
		return
	}
	st.pending--
	out := generation.SwapID(msg, m.callID, m.clientID)
	s.mu.Unlock()
	s.put(st, item{msg: out, resp: true, last: true})
}

// routeNotification delivers a notification of the process: progress to
// the request whose token it carries, a log message to the request in
// flight that set a log level, anything else to the only request in
// flight; what none of them takes is dropped.
func (s *mcpSession) routeNotification(msg []byte, env *outEnvelope) {
	s.mu.Lock()
	var c *call
	switch {
	case env.Params.ProgressToken != nil:
		c = s.tokens[idKey(env.Params.ProgressToken)]
	case env.Method == "notifications/message":
		for _, o := range s.calls {
			if o.modern != nil && o.modern.logs && (c == nil || o.seq < c.seq) {
				c = o
			}
		}
	default:
		c = s.onlyCall()
	}
	if c == nil || c.modern == nil {
		s.mu.Unlock()
		return
	}
	if c.modern.parked {
		// Rewritten for the retry, whose progress token may differ.
		s.hold(c, msg)
		s.mu.Unlock()
		return
	}
	out := s.forClient(c, msg, env)
	st := c.st
	s.mu.Unlock()
	if out != nil && st != nil && st.sse && st.open() {
		s.put(st, item{msg: out})
	}
}

// forClient rewrites a notification for the client of c: a progress
// token back to the client's; nil (nothing to send) for progress of a
// request whose client asked for none (a retry without a token). s.mu is
// held.
func (s *mcpSession) forClient(c *call, msg []byte, env *outEnvelope) []byte {
	if env.Params.ProgressToken == nil {
		return msg
	}
	if c.modern.clientToken == nil {
		return nil
	}
	return generation.SetParam(msg, "progressToken", c.modern.clientToken)
}

// put queues an item on a stream, cutting a stream its client lets stay
// full for send_timeout.
func (s *mcpSession) put(st *stream, it item) {
	if err := st.put(it, s.maxQueued, s.sendTimeout); errors.Is(err, errSlow) {
		st.cutOff()
	}
}

// toListeners hands a list change or resource update to every listen
// stream that asked for it, tagged with its subscription id.
func (s *mcpSession) toListeners(msg []byte, method string) {
	var p struct {
		Params json.RawMessage `json:"params"`
	}
	_ = json.Unmarshal(msg, &p)
	s.mu.Lock()
	var to []*listener
	for l := range s.keyed.listeners {
		if l.agreed.Wants(method, p.Params) && l.st.open() {
			to = append(to, l)
		}
	}
	s.mu.Unlock()
	for _, l := range to {
		s.put(l.st, item{msg: generation.TagSubscription(msg, l.id)})
	}
}

// sendAsync writes a message of the bridge's to the process off the
// stdout reader: a process that stops reading its stdin while its
// stdout waits must not stall the reader.
func (s *mcpSession) sendAsync(msg []byte) {
	go func() {
		if err := s.send(msg); err != nil {
			s.logger.Debug("the process did not take a message", zap.String("session", session.ShortID(s.id)), zap.Error(err))
		}
	}()
}
