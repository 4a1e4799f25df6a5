package dispatch

// A session whose client never initialized it: a client that reconnected
// after its old session was lost goes on POSTing as if initialized (the
// TypeScript SDK does), and the upstream would refuse every call. The
// bridge initializes the upstream for it, off the client's stream.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/session"
)

// LatestProtocolVersion is the newest revision the bridge initializes an
// upstream with when the client's GET named none.
const LatestProtocolVersion = "2025-11-25"

// bridgeInitID is the id of the bridge's own initialize; its answer never
// reaches the client.
const bridgeInitID = `"caddy-mcp-sse-initialize"`

// needsInitialize reports whether msg, the first of a session the client
// did not initialize, needs the upstream initialized first. initialize
// itself, the probes a client may send before it (ping, server/discover),
// the sessionless revisions' requests (which name their version in
// _meta) and responses do not.
func needsInitialize(msg *Message) bool {
	switch msg.Method {
	case "", "initialize", "ping", "server/discover":
		return false
	}
	return msg.ProtocolVersion == ""
}

// initializeUpstream runs the MCP handshake with the upstream on the
// session's behalf: initialize with the protocol version the client's GET
// named (else the newest the bridge speaks), no client capabilities, and a
// clientInfo naming the bridge; then notifications/initialized, unless
// the client's own message is that notification. Nothing of it reaches
// the client.
func (d *Dispatcher) initializeUpstream(ctx context.Context, c Call, t *requestTemplate) error {
	sess := c.Session
	version := sess.ProtocolHint
	if version == "" {
		version = LatestProtocolVersion
	}
	init := Message{
		Raw: fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"method":"initialize","params":{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"caddy-mcp-sse","title":"Caddy MCP HTTP+SSE bridge","version":"1"}}}`,
			bridgeInitID, version),
		ID:     json.RawMessage(bridgeInitID),
		Method: "initialize",
	}
	rep := newReply(d.MaxMessageSize)
	ctx, stop := d.boundToSession(ctx, sess, rep)
	defer stop()
	rep.onHeader = func(status int, h http.Header) {
		if id := h.Get(HeaderSessionID); id != "" && status < 300 {
			sess.SetUpstreamID(id)
		}
	}
	var answered bool
	var answerErr string
	rep.onMessage = func(m json.RawMessage) {
		var res struct {
			ID     json.RawMessage `json:"id"`
			Result *struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"result"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(m, &res) != nil || !bytes.Equal(res.ID, init.ID) {
			return // whatever the server says meanwhile is not for the client
		}
		answered = true
		switch {
		case res.Result != nil:
			sess.SetProtocolVersion(res.Result.ProtocolVersion)
		case res.Error != nil:
			answerErr = res.Error.Message
		}
	}
	upstreamID, _ := sess.Upstream()
	err := d.serve(c.Next, rep, func() *http.Request {
		return t.messageRequest(ctx, &init, upstreamID, "", rep, nil)
	})
	rep.finish()
	switch {
	case err != nil:
		return fmt.Errorf("initialize: %w", err)
	case !answered || answerErr != "":
		return fmt.Errorf("initialize: upstream answered HTTP %d, %s", rep.status, answerErr)
	}
	sess.SetInitialized(true)
	sess.SetUpstreamProtocol(UpstreamLegacy)
	if c.Message.Method != "notifications/initialized" {
		note := Message{Raw: []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), Method: "notifications/initialized"}
		rep := newReply(maxErrorSnippet)
		ctx, stop := d.boundToSession(ctx, sess, rep)
		defer stop()
		upstreamID, version := sess.Upstream()
		if err := d.serve(c.Next, rep, func() *http.Request {
			return t.messageRequest(ctx, &note, upstreamID, version, rep, nil)
		}); err != nil || rep.status >= 300 {
			return fmt.Errorf("notifications/initialized: HTTP %d: %v", rep.status, err)
		}
		if d.Listen && sess.StartListening() {
			go d.listen(c, t)
		}
	}
	_, negotiated := sess.Upstream()
	d.Logger.Info("initialized the upstream for a client that sent no initialize",
		zap.String("session", session.ShortID(sess.ID)), zap.String("first_method", c.Message.Method),
		zap.String("protocol_version", negotiated))
	return nil
}

// restartUpstream ends the session's upstream session, for a client that
// initializes again (as clients do after reconnecting): the new
// initialize starts a fresh one, as it would on a new session.
func (d *Dispatcher) restartUpstream(ctx context.Context, sess *session.Session, t *requestTemplate, c Call) {
	upstreamID, _ := sess.Upstream()
	if upstreamID != "" {
		if err := d.end(ctx, sess, t, c.Next); err != nil {
			d.Logger.Debug("ending the upstream session before initializing again",
				zap.String("session", session.ShortID(sess.ID)), zap.Error(err))
		}
		sess.ResetUpstream(upstreamID)
	}
	sess.SetInitialized(false)
	d.Logger.Info("client initialized its session again: a fresh upstream session replaces the old",
		zap.String("session", session.ShortID(sess.ID)))
}

// boundToSession makes the session's end cancel requests on ctx, through
// rep's cancel gate (see cancelgate.go), as a dispatch's own are.
func (d *Dispatcher) boundToSession(ctx context.Context, sess *session.Session, rep *reply) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	rep.gate = &cancelGate{cancel: cancel}
	stop := context.AfterFunc(sess.Context(), rep.gate.Cancel)
	return ctx, func() { stop(); cancel() }
}
