package mcpstdio

import (
	"net/http"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// eventWriter answers a POST whose reply may be one JSON message or an
// event stream: nothing is written until the first message, and the
// stream's headers go out with it. Each write is bounded by timeout
// (send_timeout) and flushed.
type eventWriter struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	timeout   time.Duration
	streaming bool // the event stream's headers are out
	buf       []byte
}

func newEventWriter(w http.ResponseWriter, timeout time.Duration) *eventWriter {
	return &eventWriter{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

// start sends the event stream's headers, once.
func (e *eventWriter) start() {
	if e.streaming {
		return
	}
	hdr := e.w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	e.w.WriteHeader(http.StatusOK)
	e.streaming = true
}

// write sends msg as a message event.
func (e *eventWriter) write(msg []byte) error {
	e.buf = sse.AppendFrame(e.buf[:0], sse.EventMessage, msg, 0)
	if err := e.frame(e.buf); err != nil {
		return err.err
	}
	return nil
}

// frameError is a frame that did not go out: unwritten (the client does
// not read: a slow consumer) or written and not flushed.
type frameError struct {
	err     error
	written bool
}

// frame sends a frame as it is (an event, a keepalive comment).
func (e *eventWriter) frame(b []byte) *frameError {
	e.start()
	_ = e.rc.SetWriteDeadline(time.Now().Add(e.timeout))
	if _, err := e.w.Write(b); err != nil {
		return &frameError{err: err}
	}
	if err := e.rc.Flush(); err != nil {
		return &frameError{err: err, written: true}
	}
	return nil
}

// flush flushes what start wrote.
func (e *eventWriter) flush() error { return e.rc.Flush() }

// streamFrame writes frame on a stream that stays open (the GET stream,
// a listen stream): one its client left unread for send_timeout is a
// slow consumer, logged and counted as such.
func (h *Handler) streamFrame(s *mcpSession, ew *eventWriter, frame []byte) error {
	if fe := ew.frame(frame); fe != nil {
		if !fe.written {
			h.slowConsumer(s, fe.err)
		}
		return fe.err
	}
	return nil
}
