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
	e.start()
	_ = e.rc.SetWriteDeadline(time.Now().Add(e.timeout))
	e.buf = sse.AppendFrame(e.buf[:0], sse.EventMessage, msg, 0)
	if _, err := e.w.Write(e.buf); err != nil {
		return err
	}
	return e.rc.Flush()
}
