package mcpstdio

// Sessionless requests: a 2026-07-28 client's POST, with no
// Mcp-Session-Id and an MCP-Protocol-Version of that revision. Each
// stands alone: it is checked as the revision wants (headers against the
// body), runs on the process of its process_key, and is answered on its
// own response (JSON, or an event stream when notifications come first).

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/generation"
	"github.com/mcpsse/caddy-mcp-sse/internal/postbody"
)

// modernVersions are the revisions a sessionless request may name.
var modernVersions = []string{generation.Modern}

// discoverVersions are the revisions server/discover lists: the
// sessionless one, and those a client may initialize a session with.
var discoverVersions = []string{generation.Modern, "2025-11-25", "2025-06-18", "2025-03-26"}

// writeProtocolError answers a request the revision refuses before any
// process sees it.
func writeProtocolError(w http.ResponseWriter, status int, id json.RawMessage, e *generation.ProtocolError) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(generation.ErrorResponse(id, e.Code, e.Message, e.Data))
	return err
}

// serveSessionless serves a sessionless POST.
func (h *Handler) serveSessionless(w http.ResponseWriter, r *http.Request) error {
	parsed, hold, err := h.readMessages(w, r)
	if hold == nil {
		return err
	}
	defer hold.Release()
	if len(parsed) != 1 {
		return writeError(w, http.StatusBadRequest, dispatch.CodeInvalidRequest, "a 2026-07-28 request is one JSON-RPC message, not a batch")
	}
	m := parsed[0]
	switch {
	case m.Method == "":
		return writeError(w, http.StatusBadRequest, dispatch.CodeInvalidRequest,
			"a response without a session answers nothing: input is given in a retry's inputResponses")
	case !m.IsRequest():
		// A notification has no request of a sessionless client to
		// belong to (cancelling is closing the request's stream).
		w.WriteHeader(http.StatusAccepted)
		return nil
	case m.Method == "initialize":
		return writeError(w, http.StatusBadRequest, dispatch.CodeInvalidRequest,
			"initialize is not part of "+generation.Modern+": send requests directly, or initialize without the "+generation.Modern+" MCP-Protocol-Version header")
	}
	params := paramsOf(m.Raw)
	metaVersion, meta, err := generation.RequestMeta(params)
	switch {
	case err != nil:
		return writeProtocolError(w, http.StatusBadRequest, m.ID, &generation.ProtocolError{Code: dispatch.CodeInvalidParams, Message: err.Error()})
	case metaVersion == "":
		return writeProtocolError(w, http.StatusBadRequest, m.ID, &generation.ProtocolError{Code: dispatch.CodeInvalidParams,
			Message: "missing _meta " + generation.MetaProtocolVersion + ": a request without a session carries it"})
	}
	if perr := generation.CheckHeaders(r.Header, m.Method, m.Name, metaVersion, params, nil); perr != nil {
		return writeProtocolError(w, http.StatusBadRequest, m.ID, perr)
	}
	retry, isRetry, err := generation.ParseRetry(params)
	if err != nil {
		return writeProtocolError(w, http.StatusBadRequest, m.ID, &generation.ProtocolError{Code: dispatch.CodeInvalidParams, Message: err.Error()})
	}
	key := h.processKey(r)
	var state requestState
	if isRetry {
		// Checked before anything runs: a state that is forged, another
		// principal's, expired or spent reaches no process.
		if state, err = h.checkState(retry.State, key); err != nil {
			return h.refuseState(w, m.ID, key, err)
		}
	}
	s, err := h.keyedProcess(r, key)
	if err != nil {
		return h.processFailed(w, r, m.ID, err)
	}
	if bindings := s.keyed.tools.Of(m.Name); m.Method == "tools/call" && bindings != nil {
		if perr := generation.CheckHeaders(r.Header, m.Method, m.Name, metaVersion, params, bindings); perr != nil {
			return writeProtocolError(w, http.StatusBadRequest, m.ID, perr)
		}
	}
	switch m.Method {
	case "server/discover":
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(generation.DiscoverResult(m.ID, discoverVersions, s.keyed.initResult))
		return err
	case "subscriptions/listen":
		return h.serveListen(w, r, s, m)
	}
	s.setLogLevel(meta.LogLevel)
	st := newStream(acceptsSSE(r))
	defer close(st.done)
	if isRetry {
		if state.Process != s.id {
			return h.refuseState(w, m.ID, key, errStateRefused("the process that held the request has ended"))
		}
		c, first, final, err := s.resume(h, state, m, meta, retry, st)
		if err != nil {
			return h.refuseState(w, m.ID, key, err)
		}
		hold.Release()
		return h.answerSessionless(w, r, s, c, st, first, final)
	}
	c, err := s.start(h, m, meta, st)
	switch {
	case errors.Is(err, errEnded):
		return writeError(w, http.StatusServiceUnavailable, dispatch.CodeInternalError, "the MCP server process has ended; retry")
	case errors.Is(err, errBusy):
		ref := postbody.Busy(h.MaxInflight)
		h.refused(ref)
		return ref.Write(w)
	case err != nil:
		h.stdinFailed(s, err)
		return writeError(w, http.StatusServiceUnavailable, dispatch.CodeInternalError, "the MCP server process does not take messages; retry")
	}
	hold.Release()
	return h.answerSessionless(w, r, s, c, st, nil, nil)
}

// checkState opens a retry's requestState and checks whose it is and its
// expiry; that it is used once, resume checks.
func (h *Handler) checkState(raw, key string) (requestState, error) {
	state, err := openState(h.stateRing, raw)
	switch {
	case err != nil:
		return state, err
	case state.Principal != key:
		return state, errStateRefused("requestState belongs to another principal")
	case time.Now().Unix() > state.Expires:
		return state, errStateRefused("requestState has expired (input_timeout)")
	}
	return state, nil
}

// refuseState answers a retry whose requestState is not taken: 400, and
// nothing reached the process.
func (h *Handler) refuseState(w http.ResponseWriter, id json.RawMessage, key string, err error) error {
	h.logger.Warn("refusing a retry: its requestState is not taken", zap.String("process_key_fingerprint", keyFingerprint(key)), zap.Error(err))
	metrics.stateRefused.Inc()
	return writeProtocolError(w, http.StatusBadRequest, id, &generation.ProtocolError{Code: dispatch.CodeInvalidParams, Message: err.Error()})
}

// processFailed answers a request whose process could not be had.
func (h *Handler) processFailed(w http.ResponseWriter, r *http.Request, id json.RawMessage, err error) error {
	var limit *errLimit
	switch {
	case r.Context().Err() != nil:
		return nil
	case errors.As(err, &limit):
		w.Header().Set("Retry-After", "5")
		return writeError(w, http.StatusServiceUnavailable, dispatch.CodeInternalError, err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	_, werr := w.Write(dispatch.ErrorResponse(id, dispatch.CodeInternalError, err.Error(), nil))
	return werr
}

// start sends a sessionless request to its process under ids of the
// bridge's, its progress token too, registered so that what the process
// sends for it finds st.
func (s *mcpSession) start(h *Handler, m dispatch.Message, meta generation.Meta, st *stream) (*call, error) {
	k := s.keyed
	id := k.mint("req")
	raw := generation.RequestWithID(id, m.Method, generation.LegacyParams(paramsOf(m.Raw)))
	token := progressToken(m.Raw)
	var minted json.RawMessage
	if token != nil {
		minted = k.mint("progress")
		raw = generation.SetMeta(raw, "progressToken", minted)
	}
	c := &call{id: id, key: idKey(id), st: st, modern: &modernCall{
		clientID: bytes.Clone(m.ID), clientToken: bytes.Clone(token), caps: meta.Capabilities,
		logs: meta.LogLevel != "", method: m.Method, name: m.Name, callID: id,
	}}
	s.mu.Lock()
	switch {
	case s.ended:
		s.mu.Unlock()
		return nil, errEnded
	case h.MaxInflight > 0 && len(s.calls) >= h.MaxInflight:
		s.mu.Unlock()
		return nil, errBusy
	}
	s.seq++
	c.seq = s.seq
	if minted != nil {
		c.token = idKey(minted)
		s.tokens[c.token] = c
	}
	s.calls[c.key] = c
	st.pending = 1
	s.mu.Unlock()
	if err := s.send(raw); err != nil {
		s.mu.Lock()
		s.removeCall(c)
		s.mu.Unlock()
		return nil, err
	}
	return c, nil
}

// answerSessionless writes what the process sends for a sessionless
// request: the response alone as JSON when it comes first, otherwise an
// event stream of its notifications ending with the response; or an
// InputRequiredResult when the process asks for input. first (held while
// the client was away) goes out first; final, if set, is the response.
func (h *Handler) answerSessionless(w http.ResponseWriter, r *http.Request, s *mcpSession, c *call, st *stream, first [][]byte, final []byte) error {
	ew := newEventWriter(w, time.Duration(h.SendTimeout))
	write := ew.write
	respond := func(msg []byte) error {
		if ew.streaming {
			return write(msg)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(msg)
		return err
	}
	gone := func(err error) error {
		h.slowConsumer(s, err)
		s.cancelCall(c, st, "the client closed the request's stream")
		return nil
	}
	if st.sse {
		for _, m := range first {
			if err := write(m); err != nil {
				return gone(err)
			}
		}
	}
	if final != nil {
		return respond(final)
	}
	for {
		select {
		case it := <-st.out:
			st.written(len(it.msg))
			switch {
			case it.input:
				if answer, ok := s.issueInput(h, c); ok {
					return respond(answer)
				}
			case it.resp:
				return respond(it.msg)
			default:
				if err := write(it.msg); err != nil {
					return gone(err)
				}
			}
		case <-st.cut:
			return gone(errSlow)
		case <-s.endedCh:
			for {
				select {
				case it := <-st.out:
					if it.resp {
						return respond(it.msg)
					}
					continue
				default:
				}
				break
			}
			s.mu.Lock()
			s.removeCall(c)
			s.mu.Unlock()
			return respond(s.endError(c.modern.clientID, h))
		case <-r.Context().Done():
			return gone(r.Context().Err())
		}
	}
}

// paramsOf is the params member of a message, nil if it has none.
func paramsOf(raw json.RawMessage) json.RawMessage {
	var m struct {
		Params json.RawMessage `json:"params"`
	}
	_ = json.Unmarshal(raw, &m)
	return m.Params
}
