// Package dispatch bridges a session's messages to the upstream MCP server:
// each message a client POSTs becomes a Streamable HTTP POST handed to the
// next handler in Caddy's chain (typically reverse_proxy), and every
// message of the upstream's reply is queued on the session's stream.
package dispatch

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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
}

// Go reserves the message's place in the session's order and dispatches it
// in the background. Call it from the POST's handler, in the order the
// messages were posted.
func (d *Dispatcher) Go(c Call) {
	wait, handed := c.Session.Turn()
	// The POST's request must not be read once its handler has returned
	// (its header map is reused by the server), so the parts the upstream
	// request needs are copied now.
	tmpl := template(c.Post, d.ForwardHeaders)
	go d.run(c, tmpl, wait, handed)
}

// requestTemplate is what a dispatch keeps of the client's POST.
type requestTemplate struct {
	ctx        context.Context // detached: values only, no cancellation
	url        url.URL
	host       string
	remoteAddr string
	header     http.Header // only the headers passed upstream
	server     *caddyhttp.Server
	tls        bool
}

func template(r *http.Request, forward []string) *requestTemplate {
	t := &requestTemplate{
		ctx:        context.WithoutCancel(r.Context()),
		url:        *r.URL,
		host:       r.Host,
		remoteAddr: r.RemoteAddr,
		header:     make(http.Header, 1+len(forward)),
		tls:        r.TLS != nil,
	}
	t.server, _ = r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	t.url.RawQuery = withoutSessionID(r.URL.RawQuery)
	copyHeader(t.header, r.Header, "Authorization")
	for _, name := range forward {
		copyHeader(t.header, r.Header, name)
	}
	return t
}

// withoutSessionID removes the session_id parameter, which names our
// session, not the upstream's, and keeps any other.
func withoutSessionID(rawQuery string) string {
	if !strings.Contains(rawQuery, "&") && !strings.Contains(rawQuery, ";") {
		if strings.HasPrefix(rawQuery, "session_id=") {
			return "" // the common case, without parsing
		}
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return rawQuery
	}
	q.Del("session_id")
	return q.Encode()
}

func copyHeader(dst, src http.Header, name string) {
	if v := src.Values(name); len(v) > 0 {
		dst[http.CanonicalHeaderKey(name)] = append([]string(nil), v...)
	}
}

func (d *Dispatcher) run(c Call, t *requestTemplate, wait <-chan struct{}, handed func()) {
	defer handed()
	sess := c.Session
	select {
	case <-wait:
	case <-sess.Done():
		return
	}

	ctx, cancel := context.WithTimeout(t.ctx, d.Timeout)
	defer cancel()
	defer context.AfterFunc(sess.Context(), cancel)()

	upstreamID, version := sess.Upstream()
	msg := &c.Message
	isInit := msg.Method == "initialize"
	var answered bool

	rep := newReply(d.MaxMessageSize)
	rep.onHeader = func(status int, h http.Header) {
		if id := h.Get(HeaderSessionID); id != "" && status < 300 {
			sess.SetUpstreamID(id)
		}
		if isInit {
			// Whatever follows initialize needs the upstream session
			// id from these headers; only now may the next one go.
			handed()
		}
	}
	rep.onMessage = func(m json.RawMessage) {
		m, ok := d.checkReplyMessage(rep, msg, m, &answered, sess)
		if !ok {
			return
		}
		if err := sess.Send(ctx, m, d.QueueWait); err != nil {
			d.Logger.Debug("dropping upstream message", zap.String("session_id", sess.ID), zap.Error(err))
		}
	}

	body := &handoffBody{Reader: bytes.NewReader(msg.Raw)}
	if !isInit {
		// The upstream has the message once it has read the body: the
		// next message may follow, while this one's reply still runs.
		body.done = handed
	}
	req := t.request(ctx, http.MethodPost, body, int64(len(msg.Raw)), rep)
	setMessageHeaders(req.Header, msg, upstreamID, version)

	start := time.Now()
	err := d.serve(c.Next, rep, req)
	rep.finish()
	if d.Observe != nil {
		d.Observe(msg.Method, time.Since(start))
	}
	if ce := d.Logger.Check(zap.DebugLevel, "dispatched"); ce != nil {
		ce.Write(zap.String("session_id", sess.ID), zap.String("method", msg.Method),
			zap.Int("status", rep.status), zap.Duration("duration", time.Since(start)), zap.Error(err))
	}

	if answered || sess.Closed() {
		return
	}
	if !msg.IsRequest() && err == nil && rep.status < 300 && rep.bad == "" {
		// A notification or a response, taken by the upstream. Once the
		// handshake is complete, the upstream may speak on its own.
		if d.Listen && msg.Method == "notifications/initialized" && sess.StartListening() {
			go d.listen(c, t)
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
	if err := sess.Send(sess.Context(), ErrorResponse(msg.ID, CodeInternalError, text, data), d.QueueWait); err != nil {
		d.Logger.Debug("dropping upstream error", zap.String("session_id", sess.ID), zap.Error(err))
	}
}

// serve calls the next handler. reverse_proxy aborts a reply that fails
// midway by panicking with http.ErrAbortHandler, which net/http recovers
// for requests it serves; a dispatch is not one of those, so it recovers
// here, and the failure becomes an error the client is told about.
func (d *Dispatcher) serve(next caddyhttp.Handler, w http.ResponseWriter, r *http.Request) (err error) {
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

// checkReplyMessage decides what of one upstream message reaches the
// client. The response to the dispatched request is marked answered; an
// error response the upstream could not tie to an id gets the request's
// id; a response to some other request is dropped, since this reply can
// only answer its own request and relaying it would misroute it.
func (d *Dispatcher) checkReplyMessage(rep *reply, msg *Message, m json.RawMessage, answered *bool, sess *session.Session) (json.RawMessage, bool) {
	var env replyEnvelope
	if err := json.Unmarshal(m, &env); err != nil {
		rep.noteBad("upstream sent a message that is not JSON: " + snippet(m))
		return nil, false
	}
	if env.JSONRPC == nil || *env.JSONRPC != "2.0" {
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
// never copied.
type replyEnvelope struct {
	JSONRPC *string         `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  present         `json:"method"`
	Result  present         `json:"result"`
	Error   present         `json:"error"`
}

// present records that a JSON member was there, without keeping it.
type present bool

func (p *present) UnmarshalJSON([]byte) error {
	*p = true
	return nil
}

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

// setMessageHeaders sets the Streamable HTTP headers of one message. The
// values share one backing array (one allocation, not one per header);
// each value slice has its length as capacity, so an append by a later
// handler copies instead of writing into its neighbour.
func setMessageHeaders(h http.Header, msg *Message, upstreamID, version string) {
	vals := make([]string, 0, 6)
	set := func(key, v string) {
		vals = append(vals, v)
		n := len(vals)
		h[key] = vals[n-1 : n : n]
	}
	set("Content-Type", "application/json")
	set("Accept", "application/json, text/event-stream")
	if upstreamID != "" {
		set(HeaderSessionID, upstreamID)
	}
	if version == "" {
		version = msg.ProtocolVersion
	}
	if version != "" && msg.Method != "initialize" {
		set(HeaderProtocolVersion, version)
	}
	if msg.Method != "" {
		set(HeaderMethod, headerValue(msg.Method))
		if msg.Name != "" {
			set(HeaderName, headerValue(msg.Name))
		}
	}
}

// headerValue encodes v as the 2026-07-28 revision wants header values
// mirrored from the body: as is when it is plain visible ASCII without
// surrounding blanks, otherwise base64 inside "=?base64?…?=".
func headerValue(v string) string {
	plain := v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t'
	for i := 0; plain && i < len(v); i++ {
		plain = v[i] >= 0x20 && v[i] <= 0x7e
	}
	if plain && !(len(v) >= 11 && v[:9] == "=?base64?" && v[len(v)-2:] == "?=") {
		return v
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
}

// request builds an upstream request from the template, prepared as Caddy
// prepares a request of its own: a fresh replacer and vars, so that
// concurrent dispatches never share the maps of the POST that carried
// them.
func (t *requestTemplate) request(ctx context.Context, method string, body io.ReadCloser, n int64, w http.ResponseWriter) *http.Request {
	u := t.url
	req := &http.Request{
		Method:        method,
		URL:           &u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        t.header.Clone(),
		Body:          body,
		ContentLength: n,
		Host:          t.host,
		RemoteAddr:    t.remoteAddr,
		RequestURI:    u.RequestURI(),
	}
	if body == nil {
		req.Body = http.NoBody
	}
	req = req.WithContext(ctx)
	return caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, t.server)
}

// handoffBody is a request body that reports when the upstream has read
// all of it (or closed it unread).
type handoffBody struct {
	*bytes.Reader
	done func()
}

func (b *handoffBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF && b.done != nil {
		b.done()
	}
	return n, err
}

func (b *handoffBody) Close() error {
	if b.done != nil {
		b.done()
	}
	return nil
}

// End sends the upstream session of sess, if it has one, a DELETE, as the
// Streamable HTTP transport asks of a client that is done. r is the
// request that held the stream; path is where messages are posted, so
// the DELETE takes the route the messages took.
func (d *Dispatcher) End(ctx context.Context, sess *session.Session, r *http.Request, next caddyhttp.Handler, path string) error {
	upstreamID, version := sess.Upstream()
	if upstreamID == "" {
		return nil
	}
	t := template(r, d.ForwardHeaders)
	t.url = url.URL{Path: path}
	rep := newReply(maxErrorSnippet)
	req := t.request(ctx, http.MethodDelete, nil, 0, rep)
	req.Header.Set(HeaderSessionID, upstreamID)
	if version != "" {
		req.Header.Set(HeaderProtocolVersion, version)
	}
	if err := d.serve(next, rep, req); err != nil {
		return err
	}
	if rep.status >= 400 && rep.status != http.StatusNotFound && rep.status != http.StatusMethodNotAllowed {
		return fmt.Errorf("upstream answered DELETE with HTTP %d", rep.status)
	}
	return nil
}
