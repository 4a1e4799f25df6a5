// Package postbody reads what a client POSTs to either handler within the
// limits both apply: max_message_size, body_timeout and max_pending_bytes
// on the body, max_batch_size and max_inflight on the batch it holds.
package postbody

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// Budget counts the bytes of POST bodies held at once: in all, and by
// client. It outlives config reloads with the handlers' shared state.
type Budget struct {
	Held    *atomic.Int64
	Clients *session.Counter
}

// NewBudget returns an empty budget.
func NewBudget() Budget {
	return Budget{Held: new(atomic.Int64), Clients: session.NewCounter()}
}

// Limits are the bounds on reading one body.
type Limits struct {
	// MaxMessageSize is the largest body; a larger one gets 413.
	MaxMessageSize int64
	// Timeout bounds the read; <= 0 is none. A slower body gets 408.
	Timeout time.Duration
	// MaxPending is the most bytes of bodies held at once, counted in
	// Budget; <= 0 is no limit. One client may hold a quarter of it (or
	// one largest message, if that is more), so that it alone cannot take
	// the whole of it from the others. Beyond either, 503.
	MaxPending int64
}

// Reasons of a refusal, for metrics and logs.
const (
	ReasonTooLarge = "max_message_size"
	ReasonPending  = "max_pending_bytes"
	ReasonTimeout  = "body_timeout"
	ReasonBatch    = "max_batch_size"
	ReasonInflight = "max_inflight"
	ReasonUnread   = "read_error"
	ReasonParse    = "parse_error"
)

// Refusal is a POST that goes no further, and how to answer it.
type Refusal struct {
	Status int
	Code   int // the JSON-RPC error code of the body
	Msg    string
	Reason string
	// RetryAfter, if set, is sent as Retry-After.
	RetryAfter string
	// Close asks the client to close the connection: the rest of the body
	// was not read.
	Close bool
}

func (r *Refusal) Error() string { return r.Msg }

// Write answers the request with the refusal: its status and a JSON-RPC
// error body, which the transports want rather than an error page.
func (r *Refusal) Write(w http.ResponseWriter) error {
	hdr := w.Header()
	if r.RetryAfter != "" {
		hdr.Set("Retry-After", r.RetryAfter)
	}
	if r.Close {
		hdr.Set("Connection", "close")
	}
	hdr.Set("Content-Type", "application/json")
	w.WriteHeader(r.Status)
	_, err := w.Write(dispatch.ErrorResponse(nil, r.Code, r.Msg, nil))
	return err
}

// CloseUnread asks for the connection to be closed after a refusal written
// before the request's body was read: otherwise the server reads (up to
// 256 KiB of) what remains of it before it sends the response, and a client
// that never sends it never gets one.
func CloseUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}

// Read reads a POST's body within lim, counting its bytes in b under
// client as they arrive: a client that announces large bodies and sends
// nothing holds nothing. hold.Release gives the bytes back; it is to be
// called once nothing holds the body any more, and may be called more
// than once. On a refusal nothing is held and hold is nil.
func Read(w http.ResponseWriter, r *http.Request, b Budget, lim Limits, client string) (body []byte, hold *Hold, refused *Refusal) {
	return ReadInto(new(Hold), w, r, b, lim, client)
}

// ReadInto is Read with a Hold of the caller's (a zero one), which it
// returns as hold: one kept in the caller's state for the POST is no
// allocation of its own.
func ReadInto(hr *Hold, w http.ResponseWriter, r *http.Request, b Budget, lim Limits, client string) (body []byte, hold *Hold, refused *Refusal) {
	if r.ContentLength > lim.MaxMessageSize {
		return nil, nil, tooLarge(lim)
	}
	*hr = Hold{r: http.MaxBytesReader(w, r.Body, lim.MaxMessageSize), b: b, lim: lim, client: client}
	rc := http.NewResponseController(w)
	if lim.Timeout > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(lim.Timeout))
	}
	body, err := readAll(hr, r.ContentLength)
	if lim.Timeout > 0 {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err == nil {
		return body, hr, nil
	}
	hr.Release()
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, nil, tooLarge(lim)
	case errors.Is(err, errPending):
		return nil, nil, &Refusal{Status: http.StatusServiceUnavailable, Code: dispatch.CodeServerBusy, Reason: ReasonPending,
			Msg: "the server holds too many messages in flight; retry later", RetryAfter: "1", Close: true}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, nil, &Refusal{Status: http.StatusRequestTimeout, Code: dispatch.CodeParseError, Reason: ReasonTimeout,
			Msg: fmt.Sprintf("message body not received within body_timeout (%s)", lim.Timeout), Close: true}
	}
	return nil, nil, &Refusal{Status: http.StatusBadRequest, Code: dispatch.CodeParseError, Reason: ReasonUnread,
		Msg: "reading message body: " + err.Error()}
}

// maxPresized bounds the buffer readAll makes before any byte arrived:
// about what net/http already holds for every connection.
const maxPresized = 4 << 10

func tooLarge(lim Limits) *Refusal {
	return &Refusal{Status: http.StatusRequestEntityTooLarge, Code: dispatch.CodeInvalidRequest, Reason: ReasonTooLarge,
		Msg: fmt.Sprintf("message body exceeds max_message_size (%d bytes)", lim.MaxMessageSize)}
}

// readAll is io.ReadAll that, for a small body whose length was
// announced, reads into one buffer of that length and a byte more (to see
// the end) instead of growing one from 512 bytes: one allocation. Larger
// bodies grow as their bytes arrive, as before, so that announcing a
// large body and sending nothing holds nothing.
func readAll(r io.Reader, announced int64) ([]byte, error) {
	if announced <= 0 || announced > maxPresized {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, announced+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			// More than announced: let io.ReadAll grow it as before.
			rest, err := io.ReadAll(r)
			return append(b, rest...), err
		}
	}
}

var errPending = errors.New("max_pending_bytes reached")

// Hold is a POST body's hold on max_pending_bytes: it counts the bytes
// of the body as they are read, for the process and for the client, and
// gives them back on Release. A pointer with a method, not a release
// func: every POST has one, and the func would be an allocation more.
type Hold struct {
	r        io.Reader
	b        Budget
	lim      Limits
	client   string
	held     int64
	released sync.Once
}

// Release gives the body's bytes back to the budget; only the first call
// counts.
func (hr *Hold) Release() {
	hr.released.Do(func() {
		hr.b.Held.Add(-hr.held)
		hr.b.Clients.ReleaseN(hr.client, int(hr.held))
	})
}

func (hr *Hold) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	if n > 0 {
		limit := hr.lim.MaxPending
		if !session.AddWithin(hr.b.Held, int64(n), limit) {
			return n, errPending
		}
		if limit > 0 && !hr.b.Clients.AcquireN(hr.client, n, int(max(limit/4, hr.lim.MaxMessageSize))) {
			hr.b.Held.Add(-int64(n))
			return n, errPending
		}
		hr.held += int64(n)
	}
	return n, err
}

// ParseBatch parses a body within max_batch_size and max_inflight (<= 0:
// no limit). It returns the messages and how many are requests or
// notifications (the rest are responses to the server's requests).
// Requests and notifications count against max_inflight, responses apart
// against a limit of their own of the same size, so that a tool waiting
// on sampling can always be answered.
// The messages are appended to dst.
func ParseBatch(dst []dispatch.Message, body []byte, maxBatch, maxInflight int) (msgs []dispatch.Message, work int, refused *Refusal) {
	msgs, err := dispatch.ParseInto(dst, body)
	if err != nil {
		var pe *dispatch.ParseError
		errors.As(err, &pe)
		return nil, 0, &Refusal{Status: http.StatusBadRequest, Code: pe.Code, Msg: pe.Msg, Reason: ReasonParse}
	}
	if maxBatch > 0 && len(msgs) > maxBatch {
		return nil, 0, &Refusal{Status: http.StatusRequestEntityTooLarge, Code: dispatch.CodeInvalidRequest, Reason: ReasonBatch,
			Msg: fmt.Sprintf("batch of %d messages exceeds max_batch_size (%d)", len(msgs), maxBatch)}
	}
	for i := range msgs {
		if msgs[i].Method != "" {
			work++
		}
	}
	responses := len(msgs) - work
	if maxInflight > 0 && max(work, responses) > maxInflight {
		return nil, 0, &Refusal{Status: http.StatusRequestEntityTooLarge, Code: dispatch.CodeInvalidRequest, Reason: ReasonInflight,
			Msg: fmt.Sprintf("batch of %d requests and %d responses exceeds max_inflight (%d)", work, responses, maxInflight)}
	}
	return msgs, work, nil
}

// Busy is the answer to a POST that would put more than max_inflight
// requests in flight on its session.
func Busy(maxInflight int) *Refusal {
	return &Refusal{Status: http.StatusTooManyRequests, Code: dispatch.CodeServerBusy, Reason: ReasonInflight, RetryAfter: "1",
		Msg: fmt.Sprintf("too many requests in flight on this session (max_inflight %d); retry when some are answered", maxInflight)}
}
