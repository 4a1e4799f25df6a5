package sse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Controller is what a stream needs of an HTTP response beyond writing:
// *http.ResponseController satisfies it, and reaches through the wrappers
// a server puts around the response writer.
type Controller interface {
	Flush() error
	SetWriteDeadline(time.Time) error
}

// Options shape a stream. Zero values turn a feature off.
type Options struct {
	// Retry is written as the retry field of the first frame.
	Retry time.Duration
	// Keepalive is how long the stream may be silent before a keepalive
	// frame is written; one is also written right after the endpoint.
	Keepalive time.Duration
	// SendTimeout bounds each write and flush; a client that stops
	// reading is cut when it passes.
	SendTimeout time.Duration
	// RapidYieldMax idle frames within RapidYieldWindow trip the spin
	// guard (see SpinGuard).
	RapidYieldMax    int
	RapidYieldWindow time.Duration
}

// Reasons a stream ends, other than its stop channel closing.
var (
	// ErrClientGone means the request's context ended: the client
	// disconnected or the server gave up on the connection.
	ErrClientGone = errors.New("client disconnected")
	// ErrSendTimeout means a write or flush did not finish within
	// Options.SendTimeout.
	ErrSendTimeout = errors.New("send timeout: client is not reading")
)

// SpinError is returned when the spin guard trips.
type SpinError struct {
	Idle   int           // idle frames written in the stream's life
	Max    int           // the configured maximum per window
	Window time.Duration // the configured window
}

func (e *SpinError) Error() string {
	return fmt.Sprintf("spin guard tripped: more than %d idle frames within %s (%d idle frames in all)",
		e.Max, e.Window, e.Idle)
}

// maxBatch bounds how many queued messages are coalesced into one write
// and flush; it keeps a deep queue from holding one huge buffer.
const maxBatch = 64

// Stream writes the frames of one SSE response.
type Stream struct {
	w     io.Writer
	ctl   Controller
	opts  Options
	guard *SpinGuard
	buf   []byte

	// Messages and Keepalives count the frames written, for logs and
	// metrics; read them after Run returns.
	Messages   int
	Keepalives int
}

// NewStream returns a stream that writes to w and flushes through ctl.
func NewStream(w io.Writer, ctl Controller, opts Options) *Stream {
	return &Stream{
		w:     w,
		ctl:   ctl,
		opts:  opts,
		guard: NewSpinGuard(opts.RapidYieldMax, opts.RapidYieldWindow),
		buf:   make([]byte, 0, 4096),
	}
}

// Run writes the endpoint frame, then every payload received on messages
// as a message frame, with keepalives while idle, until stop is closed
// (it returns nil), ctx ends (ErrClientGone), a write fails or times out
// (ErrSendTimeout or the write error), or the spin guard trips (*SpinError).
//
// Payloads already queued when a message arrives are written in the same
// write and flush, so a burst costs one syscall per batch, not per frame.
func (s *Stream) Run(ctx context.Context, endpoint string, messages <-chan []byte, stop <-chan struct{}) error {
	s.buf = AppendFrame(s.buf[:0], EventEndpoint, []byte(endpoint), s.opts.Retry)
	if s.opts.Keepalive > 0 {
		s.buf = AppendFrame(s.buf, EventKeepalive, keepaliveData, 0)
		s.Keepalives++
	}
	if err := s.send(); err != nil {
		return err
	}

	var tick <-chan time.Time
	var timer *time.Timer
	if s.opts.Keepalive > 0 {
		timer = time.NewTimer(s.opts.Keepalive)
		defer timer.Stop()
		tick = timer.C
	}

	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return ErrClientGone
		case msg := <-messages:
			s.buf = AppendFrame(s.buf[:0], EventMessage, msg, 0)
			s.Messages++
			s.buf = s.drain(messages)
			if err := s.send(); err != nil {
				return err
			}
		case now := <-tick:
			s.buf = AppendFrame(s.buf[:0], EventKeepalive, keepaliveData, 0)
			s.Keepalives++
			if err := s.send(); err != nil {
				return err
			}
			if s.guard.Idle(now) {
				return &SpinError{Idle: s.guard.Total(), Max: s.opts.RapidYieldMax, Window: s.opts.RapidYieldWindow}
			}
		}
		if timer != nil {
			timer.Reset(s.opts.Keepalive)
		}
	}
}

// drain appends the messages already waiting, up to maxBatch in all.
func (s *Stream) drain(messages <-chan []byte) []byte {
	buf := s.buf
	for i := 1; i < maxBatch; i++ {
		select {
		case msg := <-messages:
			buf = AppendFrame(buf, EventMessage, msg, 0)
			s.Messages++
		default:
			return buf
		}
	}
	return buf
}

// send writes and flushes the buffer under the send timeout.
func (s *Stream) send() error {
	if s.opts.SendTimeout > 0 {
		// Not every writer supports deadlines (http.ErrNotSupported); the
		// stream still works there, only without the cut.
		_ = s.ctl.SetWriteDeadline(time.Now().Add(s.opts.SendTimeout))
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return classify(err)
	}
	if err := s.ctl.Flush(); err != nil {
		return classify(err)
	}
	return nil
}

func classify(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrSendTimeout
	}
	return fmt.Errorf("writing to client: %w", err)
}
