package dispatch

// Judging the upstream's answer: which of its messages reach the client,
// and, when no response came, what to tell the client instead.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/internal/jsonscan"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// checkReplyMessage decides what of one upstream message reaches the
// client. The response to the dispatched request is marked answered; an
// error response the upstream could not tie to an id gets the request's
// id; a response to some other request is dropped, since this reply can
// only answer its own request and relaying it would misroute it.
func (d *Dispatcher) checkReplyMessage(rep *reply, msg *Message, m json.RawMessage, answered *bool, sess *session.Session) (json.RawMessage, bool) {
	env, ok := readEnvelope(m)
	if !ok {
		rep.noteBad("upstream sent a message that is not JSON: " + snippet(m))
		return nil, false
	}
	if !env.version2 {
		rep.noteBad("upstream sent a message that is not JSON-RPC 2.0: " + snippet(m))
		return nil, false
	}
	if env.Method.set() {
		return m, true // a notification or a server-to-client request
	}
	if !env.Result.set() && !env.Error.set() {
		rep.noteBad("upstream sent a message that is not JSON-RPC 2.0: " + snippet(m))
		return nil, false
	}
	switch {
	case msg.IsRequest() && !*answered && sameID(env.ID, msg.ID):
	case msg.IsRequest() && !*answered && env.Error.set() && (env.ID == nil || string(env.ID) == "null"):
		m = withID(m, msg.ID)
	default:
		rep.noteBad(fmt.Sprintf("upstream answered request id %s, not this request", string(env.ID)))
		d.Logger.Warn("dropping upstream response for another request",
			zap.String("session", session.ShortID(sess.ID)), zap.ByteString("id", env.ID))
		return nil, false
	}
	*answered = true
	if !env.Result.set() {
		return m, true
	}
	// Only these two results are read, and only they are decoded again.
	switch msg.Method {
	case "server/discover":
		var res struct {
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal(m, &res) == nil {
			if replaced, ok := discoverAnswer(msg, res.Result); ok {
				return replaced, true
			}
		}
	case "initialize":
		var res struct {
			Result struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"result"`
		}
		if json.Unmarshal(m, &res) == nil && res.Result.ProtocolVersion != "" {
			sess.SetProtocolVersion(res.Result.ProtocolVersion)
		}
		sess.SetInitialized(true)
		sess.SetUpstreamProtocol(UpstreamLegacy)
		// No stateChanged: in cluster mode the entry's ack records the
		// upstream session (ackScript), in order with the inbox.
	}
	return m, true
}

// failure says why a dispatch produced no response, as an error kind (for
// metrics) and a message for the client.
func failure(ctx context.Context, err error, rep *reply, timeout time.Duration, hadSession bool) (kind, text string) {
	status := rep.status
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timeout", fmt.Sprintf("upstream did not answer within %s", timeout)
	case err != nil && status == 0:
		code := http.StatusBadGateway
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode != 0 {
			code = he.StatusCode
			err = he.Err
		}
		rep.status = code
		return "unreachable", fmt.Sprintf("upstream unreachable (HTTP %d): %v", code, err)
	case status == http.StatusNotFound && hadSession:
		return "session_lost", "upstream session not found (it expired or the server restarted); send initialize to start a new one"
	case status >= 400:
		return "http_status", fmt.Sprintf("upstream answered HTTP %d %s: %s", status, http.StatusText(status), snippet(rep.body.Bytes()))
	case rep.bad != "":
		return "bad_reply", rep.bad
	case err != nil:
		return "incomplete", fmt.Sprintf("upstream reply failed: %v", err)
	case rep.mode == modeSSE && rep.parser.Pending():
		return "incomplete", "upstream event stream was cut off in the middle of an event"
	case rep.mode == modeSSE:
		return "incomplete", "upstream event stream ended without a response to this request"
	case status == http.StatusAccepted || status == http.StatusNoContent || rep.mode == modeJSON:
		return "no_response", fmt.Sprintf("upstream answered HTTP %d without a response to this request", status)
	case status == 0:
		return "no_response", "upstream handler wrote nothing"
	default:
		return "bad_reply", fmt.Sprintf("upstream answered HTTP %d with content type %q, not JSON or an event stream",
			status, rep.header.Get("Content-Type"))
	}
}

// replyEnvelope is what the bridge reads of an upstream message: which
// members it has, not what they hold, so a large result is scanned but
// never copied or decoded.
type replyEnvelope struct {
	version2 bool            // "jsonrpc" is "2.0"
	ID       json.RawMessage // as written, within the message
	Method   present
	Result   present
	Error    present
}

// readEnvelope reads m's envelope as json.Unmarshal into a struct of
// those members would (keys matched without regard to case, the last of
// a repeated key winning, null as no object at all), in one pass that
// allocates nothing: every upstream message goes through it. ok is false
// where that decode would fail: m is not JSON, is neither an object nor
// null, or its "jsonrpc" is neither a string nor null.
func readEnvelope(m []byte) (env replyEnvelope, ok bool) {
	if !json.Valid(m) {
		return env, false
	}
	i := jsonscan.SkipSpace(m, 0)
	switch m[i] {
	case 'n':
		return env, true // null: an empty envelope
	case '{':
	default:
		return env, false
	}
	err := jsonscan.EachMember(m, func(key string, v []byte) error {
		switch {
		case strings.EqualFold(key, "jsonrpc"):
			switch v[0] {
			case 'n':
				env.version2 = false
			case '"':
				s, _ := jsonscan.StringView(v)
				env.version2 = s == "2.0"
			default:
				return errNotString
			}
		case strings.EqualFold(key, "id"):
			env.ID = v
		case strings.EqualFold(key, "method"):
			env.Method = true
		case strings.EqualFold(key, "result"):
			env.Result = true
		case strings.EqualFold(key, "error"):
			env.Error = true
		}
		return nil
	})
	return env, err == nil
}

var errNotString = errors.New("not a string")

// present records that a JSON member was there, without keeping it.
type present bool

func (p present) set() bool { return bool(p) }

// sameID compares JSON-RPC ids; numbers compare by value, so an upstream
// that re-encodes 1.0 as 1 still matches.
func sameID(a, b json.RawMessage) bool {
	a, b = bytes.TrimSpace(a), bytes.TrimSpace(b)
	if bytes.Equal(a, b) {
		return true
	}
	if len(a) == 0 || len(b) == 0 || a[0] == '"' || b[0] == '"' {
		return false
	}
	var x, y float64
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && x == y
}

// withID returns the message m with its id replaced.
func withID(m, id json.RawMessage) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(m, &obj) != nil {
		return m
	}
	obj["id"] = id
	out, err := json.Marshal(obj)
	if err != nil {
		return m
	}
	return out
}
