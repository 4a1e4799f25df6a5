// Package sse writes Server-Sent Events: frame encoding, an incremental
// event parser, and the stream that delivers a session's messages to one
// client. It knows nothing of Caddy or MCP sessions; a stream is handed a
// writer and a Queue, which gives it messages and tells it when to stop.
package sse

import (
	"strconv"
	"time"
)

// Event names used on the wire. The HTTP+SSE transport of MCP (2024-11-05)
// defines "endpoint" and "message". "keepalive" is mcpgateway's: most
// clients ignore it, but the Go SDK hands every event's data to its
// JSON-RPC decoder and dies on it, so keepalives are comment lines unless
// asked for (Options.KeepaliveEvent).
const (
	EventEndpoint  = "endpoint"
	EventMessage   = "message"
	EventKeepalive = "keepalive"
)

// keepaliveData is the payload of a keepalive event: valid JSON, so that a
// client which parses unknown events as JSON is not tripped up.
var keepaliveData = []byte("{}")

// keepaliveComment is a keepalive every SSE parser ignores: a comment line.
var keepaliveComment = []byte(": keepalive\n\n")

// AppendFrame appends one SSE frame to dst and returns the extended slice.
//
// The event name is written as given; callers pass one of the constants
// above, never user input. The data may hold any bytes: every line break
// (CRLF, CR or LF) starts a new "data:" line, so a payload can never end the
// frame early or forge a field of its own, and a spec-following parser
// joins the lines back with LF. A retry of zero or less writes no retry
// field.
func AppendFrame(dst []byte, event string, data []byte, retry time.Duration) []byte {
	if event != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, event...)
		dst = append(dst, '\n')
	}
	start := 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c != '\n' && c != '\r' {
			continue
		}
		dst = appendDataLine(dst, data[start:i])
		if c == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		start = i + 1
	}
	dst = appendDataLine(dst, data[start:])
	if retry > 0 {
		dst = append(dst, "retry: "...)
		dst = strconv.AppendInt(dst, retry.Milliseconds(), 10)
		dst = append(dst, '\n')
	}
	return append(dst, '\n')
}

// AppendFrameID is AppendFrame with an id field, prefix followed by seq,
// which a client sends back as Last-Event-ID when it reconnects. The
// prefix must hold no line break.
func AppendFrameID(dst []byte, event, prefix string, seq uint64, data []byte, retry time.Duration) []byte {
	dst = append(dst, "id: "...)
	dst = append(dst, prefix...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, '\n')
	return AppendFrame(dst, event, data, retry)
}

func appendDataLine(dst, line []byte) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, line...)
	return append(dst, '\n')
}
