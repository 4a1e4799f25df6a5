package dispatch

// The sessionless path: a legacy client (initialize, a session, requests
// from the server on its stream) in front of a 2026-07-28 upstream (no
// session; _meta on every request; input requests answered inside results
// and retried, MRTR). The translation itself is in package generation;
// this file sends what it makes through the handler chain.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/generation"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// Settings of upstream_protocol.
const (
	UpstreamAuto   = "auto"
	UpstreamModern = generation.Modern
	UpstreamLegacy = "legacy"
)

// Defaults of the sessionless path's settings.
const (
	DefaultInputTimeout   = 10 * time.Minute
	DefaultMaxInputRounds = 10
)

// inputLimits are InputTimeout and MaxInputRounds, defaulted.
func (d *Dispatcher) inputLimits() (time.Duration, int) {
	timeout, rounds := d.InputTimeout, d.MaxInputRounds
	if timeout <= 0 {
		timeout = DefaultInputTimeout
	}
	if rounds <= 0 {
		rounds = DefaultMaxInputRounds
	}
	return timeout, rounds
}

// CodeInputFailed is the error a request ends with when the input the
// server asked for could not be had from the client (it answered with an
// error, too late, too much, or the rounds ran out).
const CodeInputFailed = -32603

// modernState is the session's state on the sessionless path, nil for a
// session on the legacy path.
func modernState(sess *session.Session) *generation.Session {
	st, _ := sess.Bridge().(*generation.Session)
	return st
}

// route names the upstream a dispatch goes to, for the verdict cache: the
// handler (a Dispatcher is one mcp_sse) and the POST's host and path,
// which choose the route after it.
func route(t *requestTemplate) string { return t.host + t.url.Path }

// modern handles the message on the sessionless path and reports whether
// it did; false sends it down the legacy path. handed lets the session's
// next message go.
func (d *Dispatcher) modern(c Call, t *requestTemplate, handed func()) bool {
	sess := c.Session
	msg := &c.Message
	st := modernState(sess)
	if st == nil {
		if msg.Method != "initialize" || d.UpstreamProtocol == UpstreamLegacy || sess.Initialized() {
			return false
		}
		return d.probe(c, t)
	}
	if d.Listen && sess.StartListening() {
		// A session taken over from another instance (cluster mode)
		// listens anew from its first message here.
		go d.modernListen(c, t, st)
	}
	switch msg.Method {
	case "":
		// The client's answer to an input request. One to an id the bridge
		// did not mint, or a second answer, is dropped.
		if !st.Answer(msg.ID, msg.Raw) {
			d.Logger.Debug("dropping a client response no input request awaits",
				zap.String("session", session.ShortID(sess.ID)), zap.ByteString("id", msg.ID))
		}
	case "initialize":
		client, err := generation.ParseInitialize(params(msg.Raw))
		if err != nil {
			d.answer(sess, ErrorResponse(msg.ID, CodeInvalidParams, "invalid initialize params: "+err.Error(), nil))
			break
		}
		st.Reinitialize(client)
		d.stateChanged(sess)
		d.answer(sess, generation.InitializeResult(msg.ID, client.ProtocolVersion, st.Discovery))
	case "ping":
		d.answer(sess, generation.Response(msg.ID, struct{}{}))
	case "logging/setLevel":
		var p struct {
			Level string `json:"level"`
		}
		if json.Unmarshal(params(msg.Raw), &p) != nil || !generation.ValidLogLevel(p.Level) {
			d.answer(sess, ErrorResponse(msg.ID, CodeInvalidParams, "logging/setLevel needs params.level, one of "+strings.Join(generation.LogLevels, ", "), nil))
			break
		}
		st.SetLogLevel(p.Level)
		d.stateChanged(sess)
		d.answer(sess, generation.Response(msg.ID, struct{}{}))
	case "notifications/cancelled":
		st.Cancelled(params(msg.Raw))
	case "resources/subscribe", "resources/unsubscribe":
		var p struct {
			URI string `json:"uri"`
		}
		_ = json.Unmarshal(params(msg.Raw), &p)
		if p.URI == "" {
			d.answer(sess, ErrorResponse(msg.ID, CodeInvalidParams, msg.Method+" needs params.uri", nil))
			break
		}
		if msg.Method == "resources/unsubscribe" {
			st.Unsubscribe(p.URI)
		} else if _, err := st.Subscribe(p.URI); err != nil {
			d.answer(sess, ErrorResponse(msg.ID, CodeInvalidParams, err.Error(), nil))
			break
		}
		d.stateChanged(sess)
		d.answer(sess, generation.Response(msg.ID, struct{}{}))
	default:
		if !msg.IsRequest() {
			// notifications/initialized, notifications/roots/list_changed
			// and the like: a sessionless server has nothing to tie them to.
			break
		}
		d.modernCall(c, t, st, handed)
	}
	return true
}

// answer queues a message the bridge answers itself.
func (d *Dispatcher) answer(sess *session.Session, m json.RawMessage) {
	if err := sess.SendAnswer(sess.Context(), m, d.QueueWait); err != nil {
		d.Logger.Debug("dropping an answer", zap.String("session", session.ShortID(sess.ID)), zap.Error(err))
	}
}

// probe asks the upstream server/discover for a client that initializes,
// unless the route's verdict is remembered, and on a modern answer puts
// the session on the sessionless path, answering the initialize itself.
func (d *Dispatcher) probe(c Call, t *requestTemplate) bool {
	sess := c.Session
	msg := &c.Message
	client, err := generation.ParseInitialize(params(msg.Raw))
	if err != nil {
		return false // the upstream says what is wrong with it
	}
	modern, disc, known := d.verdicts.Get(route(t))
	if !known {
		modern, disc, known = d.discover(c, t, client)
		if known && !modern {
			// A legacy answer to a probe that carries what this client said
			// of itself may be the upstream refusing just that (a clientInfo
			// whose name is not a string draws a 400): remembered, it would
			// put every client of the route on the legacy path. A probe with
			// nothing of the client decides what the route is.
			modern, disc, known = d.discover(c, t, generation.ProbeClient)
		}
		if known {
			d.verdicts.Set(route(t), modern, disc)
		}
	}
	if !modern && d.UpstreamProtocol != UpstreamModern {
		return false
	}
	st := generation.NewSession(client, disc)
	sess.SetBridge(st)
	sess.SetUpstreamProtocol(generation.Modern)
	sess.SetInitialized(true)
	d.stateChanged(sess)
	d.answer(sess, generation.InitializeResult(msg.ID, client.ProtocolVersion, disc))
	if d.Listen && sess.StartListening() {
		go d.modernListen(c, t, st)
	}
	return true
}

// discover sends server/discover with client's info and capabilities
// in _meta and judges the answer; known is false when none came (an
// upstream that could not be reached, or failed, says nothing of its
// generation).
func (d *Dispatcher) discover(c Call, t *requestTemplate, client generation.Client) (modern bool, disc generation.Discovery, known bool) {
	ctx, cancel := context.WithCancel(c.Session.Context())
	defer cancel()
	body := generation.DiscoverRequest(client)
	head := Message{Raw: body, ID: json.RawMessage(generation.DiscoverID), Method: "server/discover", ProtocolVersion: generation.Modern}
	x := d.exchange(ctx, c.Next, t, &head, nil, nil)
	if known = definitive(x); known {
		modern, disc = generation.Verdict(x.answer)
	}
	d.Logger.Info("probed the upstream's protocol generation",
		zap.String("session", session.ShortID(c.Session.ID)), zap.Bool("sessionless", modern),
		zap.Int("status", x.status), zap.String("error", x.text))
	return modern, disc, known
}

// definitive reports whether an answer to server/discover says which
// generation the route speaks, for every client: a JSON-RPC answer, or the
// statuses the revision's Backward Compatibility section reads as a legacy
// server's (400, 404, 405). Other refusals (401 or 403 for this client's
// credentials or Host, 429 for a loaded upstream, 413 for what it said of
// itself) and failures (5xx, unreachable) say nothing of the route: the
// session takes the legacy path, and the next one probes again.
func definitive(x exchanged) bool {
	switch x.status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
		return true
	}
	return x.answer != nil && x.status < 400
}

// modernCall sends a client's request to the sessionless upstream, with
// the client's _meta, and runs its input rounds: each input request the
// server answers with goes to the client, and the request is sent again
// with the answers, until the result is complete.
func (d *Dispatcher) modernCall(c Call, t *requestTemplate, st *generation.Session, handed func()) {
	sess := c.Session
	msg := &c.Message
	ctx, cancel := context.WithCancel(sess.Context())
	defer cancel()
	defer st.Track(msg.ID, cancel)()
	meta := st.Meta()
	handed() // what the request carries is taken: the next message may go

	fail := func(code int, text string, data any) {
		d.answer(sess, ErrorResponse(msg.ID, code, text, data))
	}
	relay := func(m json.RawMessage) {
		if err := sess.Send(ctx, m, d.QueueWait); err != nil {
			d.Logger.Debug("dropping upstream message", zap.String("session", session.ShortID(sess.ID)), zap.Error(err))
		}
	}
	var set map[string]json.RawMessage
	id := msg.ID
	relisted := false
	later := 0 // rounds that asked for nothing
	for rounds := 0; ; rounds++ {
		body, err := generation.Request(msg.Raw, id, meta, set)
		if err != nil {
			fail(CodeInvalidParams, "invalid params: "+err.Error(), nil)
			return
		}
		head := Message{Raw: body, ID: id, Method: msg.Method, Name: msg.Name, ProtocolVersion: generation.Modern}
		var paramHeaders map[string]string
		if msg.Method == "tools/call" {
			if bindings := st.ToolBindings(msg.Name); len(bindings) > 0 {
				paramHeaders = generation.ParamHeaders(bindings, params(msg.Raw))
			}
		}
		start := time.Now()
		x := d.exchange(ctx, c.Next, t, &head, paramHeaders, relay)
		if d.Observe != nil {
			d.Observe(msg.Method, time.Since(start))
		}
		if ctx.Err() != nil {
			return // cancelled by the client, or the session ended
		}
		if x.answer == nil {
			if d.UpstreamError != nil {
				d.UpstreamError(x.kind)
			}
			if x.status == http.StatusNotFound || x.status == http.StatusMethodNotAllowed || x.status == http.StatusBadRequest {
				// Refused as a legacy server would: probe again next time.
				d.verdicts.Forget(route(t))
			}
			data := map[string]any{"kind": x.kind}
			if x.status != 0 {
				data["status"] = x.status
			}
			fail(CodeInternalError, x.text, data)
			return
		}
		answer := x.answer
		code := generation.ErrorCode(answer)
		if code == generation.CodeUnsupportedProtocolVersion {
			// The route no longer serves the sessionless revision (a
			// stateful server now answers there): probe again next time.
			d.verdicts.Forget(route(t))
		}
		if msg.Method == "tools/call" && !relisted && code == generation.CodeHeaderMismatch {
			// The tool wants headers the bridge has not learned (or its
			// definition changed): list the tools once, as the revision
			// tells clients to, and send the same round again.
			relisted = true
			d.listTools(ctx, c, t, st, meta)
			rounds--
			id = retryID()
			continue
		}
		ir, more, err := generation.ParseResult(answer)
		if err != nil {
			fail(CodeInputFailed, "upstream asked for input the bridge cannot relay: "+err.Error(), map[string]any{"kind": "input_invalid"})
			return
		}
		if !more {
			if msg.Method == "tools/list" {
				answer = d.learnTools(sess, st, answer)
			}
			d.answer(sess, generation.Complete(answer, msg.ID, x.answerID))
			return
		}
		if _, maxRounds := d.inputLimits(); rounds >= maxRounds {
			fail(CodeInputFailed, fmt.Sprintf("upstream still asked for input after %d rounds (max_input_rounds)", rounds),
				map[string]any{"kind": "input_rounds", "rounds": rounds})
			return
		}
		if len(ir.Requests) == 0 {
			// "Retry later": the server asked for nothing, only for the
			// request again. Not at once: a loaded server would get the
			// rounds back to back.
			if !sleepCtx(ctx, retryLaterDelay(later)) {
				return
			}
			later++
		}
		if c.End != nil {
			// From here the call waits on the client, for as long as
			// input_timeout: it keeps a copy of its message, not the body,
			// and is bounded by max_inflight × max_message_size a session.
			msg.Raw, msg.ID = bytes.Clone(msg.Raw), bytes.Clone(msg.ID)
			c.End.LetGo()
			c.End = nil // this copy's: the dispatch's own still ends it
		}
		responses, code, text, data := d.ask(ctx, sess, st, ir, meta.Capabilities)
		if ctx.Err() != nil {
			return
		}
		if text != "" {
			fail(code, text, data) // data is set with text
			return
		}
		if d.InputRound != nil {
			d.InputRound()
		}
		if set, err = generation.RetryParams(responses, ir.State); err != nil {
			fail(CodeInternalError, err.Error(), nil)
			return
		}
		id = retryID()
	}
}

// retryLaterDelay is the wait before the n-th (from 0) retry of a round
// that asked for nothing: 250ms, doubling, at most 5s.
func retryLaterDelay(n int) time.Duration {
	return min(250*time.Millisecond<<min(n, 5), 5*time.Second)
}

// sleepCtx waits d, or less if ctx ends first; it reports whether it
// waited all of d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ask puts one round's input requests to the client, as requests of the
// server on its stream, and collects the answers, within input_timeout.
// A failure comes back as a JSON-RPC error's code, text and data.
func (d *Dispatcher) ask(ctx context.Context, sess *session.Session, st *generation.Session, ir generation.InputRequired, caps json.RawMessage) (responses map[string]json.RawMessage, code int, text string, data map[string]any) {
	for _, r := range ir.Requests {
		capability := generation.Capability(r.Method)
		if capability == "" {
			return nil, CodeInputFailed, fmt.Sprintf("upstream asked for input of a kind the bridge does not relay: %q", r.Method),
				map[string]any{"kind": "input_unsupported", "method": r.Method}
		}
		if !generation.Declares(caps, capability) {
			return nil, generation.CodeMissingClientCapability,
				fmt.Sprintf("upstream asked for %s (%s), which the client did not declare", capability, r.Method),
				map[string]any{"kind": "input_capability", "requiredCapabilities": map[string]any{capability: map[string]any{}}}
		}
	}
	pending := make([]askedInput, 0, len(ir.Requests))
	defer func() {
		for _, a := range pending {
			st.Cancel(a.id)
		}
	}()
	for _, r := range ir.Requests {
		id, answer := st.Ask()
		pending = append(pending, askedInput{r, id, answer})
		if err := sess.Send(ctx, generation.ClientRequest(id, r), d.QueueWait); err != nil {
			return nil, CodeInternalError, "could not ask the client for input: " + err.Error(), map[string]any{"kind": "input_undelivered"}
		}
	}
	inputTimeout, _ := d.inputLimits()
	timer := time.NewTimer(inputTimeout)
	defer timer.Stop()
	responses = make(map[string]json.RawMessage, len(pending))
	size := 0
	for i, a := range pending {
		select {
		case m := <-a.answer:
			got := generation.ParseAnswer(m)
			if got.Failed {
				d.cancelAsked(sess, pending[i+1:], "the client failed another input request of the round")
				return nil, CodeInputFailed,
					fmt.Sprintf("client answered input request %q (%s) with error %d: %s", a.Key, a.Method, got.Code, got.Message),
					map[string]any{"kind": "input_error", "key": a.Key, "method": a.Method, "clientCode": got.Code}
			}
			if size += len(got.Result); size > d.MaxMessageSize {
				d.cancelAsked(sess, pending[i+1:], "the round's answers are too large")
				return nil, CodeInputFailed, fmt.Sprintf("the client's answers exceed %d bytes", d.MaxMessageSize),
					map[string]any{"kind": "input_too_large"}
			}
			responses[a.Key] = got.Result
		case <-timer.C:
			d.cancelAsked(sess, pending[i:], "input_timeout")
			return nil, CodeInputFailed, fmt.Sprintf("client did not answer input request %q (%s) within %s (input_timeout)", a.Key, a.Method, inputTimeout),
				map[string]any{"kind": "input_timeout", "key": a.Key, "method": a.Method}
		case <-ctx.Done():
			if !sess.Closed() {
				d.cancelAsked(sess, pending[i:], "the request was cancelled")
			}
			return nil, 0, "", nil
		}
	}
	return responses, 0, "", nil
}

// askedInput is an input request put to the client, awaiting its answer.
type askedInput struct {
	generation.InputRequest
	id     json.RawMessage
	answer <-chan json.RawMessage
}

// cancelAsked tells the client the bridge no longer awaits the answers to
// input requests it was asked.
func (d *Dispatcher) cancelAsked(sess *session.Session, asked []askedInput, reason string) {
	for _, a := range asked {
		note, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "notifications/cancelled",
			"params": map[string]any{"requestId": a.id, "reason": reason}})
		_ = sess.TrySend(note)
	}
}

// exchange sends one request built by the bridge to the upstream and
// returns its response, nil if none came (rep says why); every other
// message of the reply (notifications: progress, log messages) goes to
// other. ctx ends it early: the client cancelled, or the session ended.
func (d *Dispatcher) exchange(ctx context.Context, next caddyhttp.Handler, t *requestTemplate, head *Message, headers map[string]string, other func(json.RawMessage)) exchanged {
	var answer, answerID json.RawMessage
	rep := newReply(d.MaxMessageSize)
	rctx, cancel := context.WithTimeout(t.ctx, d.Timeout)
	defer cancel()
	rep.gate = &cancelGate{cancel: cancel}
	defer context.AfterFunc(ctx, rep.gate.Cancel)()
	rep.onMessage = func(m json.RawMessage) {
		env, ok := readEnvelope(m)
		if !ok || !env.version2 {
			rep.noteBad("upstream sent a message that is not JSON-RPC 2.0: " + snippet(m))
			return
		}
		switch {
		case env.Method.set():
			if other != nil {
				other(m)
			}
		case answer == nil && (env.Result.set() || env.Error.set()) &&
			(sameID(env.ID, head.ID) || (env.Error.set() && (env.ID == nil || string(env.ID) == "null"))):
			answer, answerID = m, env.ID
		default:
			rep.noteBad(fmt.Sprintf("upstream answered request id %s, not this request", string(env.ID)))
		}
	}
	err := d.serve(next, rep, func() *http.Request {
		req := t.messageRequest(rctx, head, "", generation.Modern, rep, nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		return req
	})
	rep.finish()
	x := exchanged{answer: answer, answerID: answerID, status: rep.status}
	if answer == nil {
		x.kind, x.text = failure(rctx, err, rep, d.Timeout, false)
		x.status = rep.status // failure fills in a status for an unreachable upstream
	}
	return x
}

// exchanged is the outcome of an exchange: the response, or why none
// came (an error kind for metrics, a text for the client).
type exchanged struct {
	answer     json.RawMessage
	answerID   json.RawMessage // the id the answer came under
	status     int
	kind, text string
}

// params is the params member of a message, nil if it has none.
func params(raw json.RawMessage) json.RawMessage {
	var m struct {
		Params json.RawMessage `json:"params"`
	}
	_ = json.Unmarshal(raw, &m)
	return m.Params
}

// learnTools takes a tools/list response: the tools' x-mcp-header
// bindings are remembered for their calls, and a tool whose bindings are
// invalid is left out of the list the client gets.
func (d *Dispatcher) learnTools(sess *session.Session, st *generation.Session, answer json.RawMessage) json.RawMessage {
	out, bindings, dropped := generation.FilterTools(answer)
	st.LearnTools(bindings)
	if len(dropped) > 0 {
		d.Logger.Warn("left out of tools/list: tools whose x-mcp-header annotations are invalid",
			zap.String("session", session.ShortID(sess.ID)), zap.Strings("tools", dropped))
	}
	return out
}

// listTools lists the upstream's tools (every page) for their bindings.
func (d *Dispatcher) listTools(ctx context.Context, c Call, t *requestTemplate, st *generation.Session, meta generation.Meta) {
	cursor := json.RawMessage(nil)
	for page := 0; page < maxToolPages; page++ {
		p := map[string]any{}
		if cursor != nil {
			p["cursor"] = cursor
		}
		raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "mcp-sse-tools", "method": "tools/list", "params": p})
		id := retryID()
		body, err := generation.Request(raw, id, meta, nil)
		if err != nil {
			return
		}
		head := Message{Raw: body, ID: id, Method: "tools/list", ProtocolVersion: generation.Modern}
		x := d.exchange(ctx, c.Next, t, &head, nil, nil)
		if x.answer == nil {
			return
		}
		d.learnTools(c.Session, st, x.answer)
		var res struct {
			Result struct {
				NextCursor json.RawMessage `json:"nextCursor"`
			} `json:"result"`
		}
		if json.Unmarshal(x.answer, &res) != nil || len(res.Result.NextCursor) == 0 || string(res.Result.NextCursor) == "null" {
			return
		}
		cursor = res.Result.NextCursor
	}
}

// maxToolPages bounds the pages of tools/list the bridge reads on its own.
const maxToolPages = 20

// BridgeSnapshot is the state of a session on the sessionless path that
// moves with it to another instance, "" for a session on the legacy path.
func BridgeSnapshot(sess *session.Session) string {
	if st := modernState(sess); st != nil {
		return st.Snapshot()
	}
	return ""
}

// RestoreBridge puts a session taken over from another instance back on
// the sessionless path, from its BridgeSnapshot.
func RestoreBridge(sess *session.Session, snapshot string) error {
	st, err := generation.Restore(snapshot)
	if err != nil {
		return err
	}
	sess.SetBridge(st)
	sess.SetUpstreamProtocol(generation.Modern)
	sess.SetInitialized(true)
	return nil
}
