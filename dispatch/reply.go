package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// reply is the http.ResponseWriter an upstream handler writes its answer
// to. It relays the answer message by message as it is written: a
// text/event-stream body event by event (so progress notifications and
// server-to-client requests reach the client while a call still runs),
// an application/json body when it is complete.
type reply struct {
	header      http.Header
	status      int
	wroteHeader bool
	mode        replyMode
	body        bytes.Buffer // JSON bodies, and the start of any other body
	parser      sse.Parser
	maxSize     int

	// onHeader runs once, when the status line is written.
	onHeader func(status int, h http.Header)
	// onMessage runs for every message of the reply.
	onMessage func(json.RawMessage)
	// to, if set, takes the place of onHeader and onMessage: a dispatch's
	// own state, whose methods they are, without an allocation for each
	// method value.
	to replyTaker
	// bad records the first thing in the reply that was not a JSON-RPC
	// message; the dispatch reports it if no response arrives.
	bad string

	// sends watches the request this is the reply to (see resend.go).
	sends *sendWatch
	// gate, if set, holds back the dispatch's cancellation while the
	// reply's header is awaited (see cancelgate.go).
	gate *cancelGate
	// mayResend is set while the request may be sent again; dropped
	// records that it was dropped unsent, and this reply is still unwritten.
	mayResend, dropped bool
}

// replyTaker is what a reply's header and messages go to.
type replyTaker interface {
	onHeader(status int, h http.Header)
	onMessage(json.RawMessage)
}

type replyMode int

const (
	modeOther replyMode = iota
	modeJSON
	modeSSE
)

// maxErrorSnippet bounds how much of a non-JSON-RPC body is kept to quote
// in the error the client receives.
const maxErrorSnippet = 256

func newReply(maxSize int) *reply {
	r := new(reply)
	r.init(maxSize)
	return r
}

// init readies a zero reply.
func (r *reply) init(maxSize int) {
	r.header = make(http.Header)
	r.maxSize = maxSize
	r.parser.MaxEventSize = maxSize
}

func (r *reply) Header() http.Header { return r.header }

func (r *reply) WriteHeader(status int) {
	if r.wroteHeader || status < 200 {
		// 1xx informational responses are not the reply.
		return
	}
	if status == statusClientClosed && r.mayResend && r.sends.droppedUnsent() {
		r.dropped = true
		return
	}
	r.wroteHeader = true
	r.status = status
	if r.gate != nil {
		r.gate.release()
	}
	switch mediaType(r.header.Get("Content-Type")) {
	case "text/event-stream":
		r.mode = modeSSE
	case "application/json":
		r.mode = modeJSON
	}
	switch {
	case r.to != nil:
		r.to.onHeader(status, r.header)
	case r.onHeader != nil:
		r.onHeader(status, r.header)
	}
}

func (r *reply) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	switch r.mode {
	case modeSSE:
		err := r.parser.Feed(p, func(ev sse.Event) error {
			if ev.Name != "" && ev.Name != sse.EventMessage {
				return nil
			}
			r.message(ev.Data)
			return nil
		})
		if err != nil {
			r.noteBad(fmt.Sprintf("upstream event stream: %v", err))
			return 0, err
		}
	case modeJSON:
		if r.body.Len()+len(p) > r.maxSize {
			r.noteBad(fmt.Sprintf("upstream reply exceeds %d bytes", r.maxSize))
			return 0, errReplyTooLarge
		}
		r.body.Write(p)
	default:
		if room := maxErrorSnippet - r.body.Len(); room > 0 {
			r.body.Write(p[:min(room, len(p))])
		}
	}
	return len(p), nil
}

// mediaType is the media type of a Content-Type, lower case, as
// mime.ParseMediaType reads it; the two every reply has are recognised
// without it (and its allocations).
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	for _, known := range []string{"application/json", "text/event-stream"} {
		if strings.EqualFold(mt, known) {
			return known
		}
	}
	mt, _, _ = mime.ParseMediaType(ct)
	return mt
}

var errReplyTooLarge = fmt.Errorf("upstream reply too large")

// Flush lets reverse_proxy stream: the reply relays at Write time already.
func (r *reply) Flush() {}

// SetWriteDeadline is accepted and ignored: the dispatch's context bounds
// the reply, not a socket deadline.
func (r *reply) SetWriteDeadline(time.Time) error { return nil }

// finish relays a buffered JSON body once the upstream is done.
func (r *reply) finish() {
	if r.mode != modeJSON {
		return
	}
	body := bytes.TrimSpace(r.body.Bytes())
	if len(body) == 0 {
		return
	}
	if body[0] != '[' {
		r.message(body)
		return
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(body, &batch); err != nil {
		r.noteBad("upstream sent invalid JSON: " + err.Error())
		return
	}
	for _, m := range batch {
		r.message(m)
	}
}

func (r *reply) message(data []byte) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return
	}
	if r.to != nil {
		r.to.onMessage(data)
		return
	}
	r.onMessage(data)
}

func (r *reply) noteBad(why string) {
	if r.bad == "" {
		r.bad = why
	}
}

// snippet quotes the start of b for an error message.
func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > maxErrorSnippet {
		return string(b[:maxErrorSnippet]) + "…"
	}
	return string(b)
}
