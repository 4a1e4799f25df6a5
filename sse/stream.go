package sse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
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
	// KeepaliveEvent writes keepalives as mcpgateway does, an event named
	// keepalive with {} as data, instead of a comment line.
	KeepaliveEvent bool
	// IDPrefix, if set, gives the opening frame and every message frame
	// an id: the prefix, then the frame's sequence number, which the
	// queue's Journal assigns. A client that reconnects sends the last
	// one it saw as Last-Event-ID.
	IDPrefix string
	// SendTimeout bounds each write and flush; a client that stops
	// reading is cut when it passes.
	SendTimeout time.Duration
	// RapidYieldMax idle frames within RapidYieldWindow trip the spin
	// guard (see SpinGuard).
	RapidYieldMax    int
	RapidYieldWindow time.Duration
	// OnKeepalive and OnMessages, if set, are told of every keepalive
	// frame and of every batch of message frames written.
	OnKeepalive func()
	OnMessages  func(n int)
	// Offload, if set, runs each write and flush of the stream and
	// returns once it has. A server that calls its handlers from deep in
	// a goroutine's stack uses it to run them where the extra depth does
	// not grow the stack every idle stream keeps; Run itself only waits.
	Offload func(func())
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

// Queue is where a stream takes its messages from, and what tells it to
// end. A stream waits on Ready and on its context only: one channel for
// messages, closing and the keepalive timer keeps what every idle stream
// parks on small.
type Queue interface {
	// Ready receives a value when messages may be waiting, when the
	// queue has been closed, or after Wake.
	Ready() <-chan struct{}
	// Take appends every waiting message to dst, in order, removes them
	// from the queue, and reports whether the queue has been closed.
	Take(dst [][]byte) (_ [][]byte, closed bool)
	// Wake makes Ready receive a value.
	Wake()
}

// Journal is what a Queue that numbers its frames offers (see
// Options.IDPrefix). Frames are numbered as they leave the queue, in the
// same step, so that none is lost unnumbered: a frame whose write fails
// can be sent again to the client when it reconnects.
type Journal interface {
	// TakeNumbered is Take that also numbers what it takes: the first
	// message gets first, each next one the number after.
	TakeNumbered(dst [][]byte) (_ [][]byte, first uint64, closed bool)
	// Stamp numbers msg, a message written that never was in the queue
	// (see Deliver); false means the queue is no longer this stream's
	// and msg must not be written.
	Stamp(msg []byte) (seq uint64, ok bool)
	// Flushed says that every frame up to seq has been written and
	// flushed to the client.
	Flushed(seq uint64)
}

// Frame is a message frame written before, with the sequence number it
// had, sent again to a client that reconnects (see Stream.Resume).
type Frame struct {
	Seq  uint64
	Data []byte
}

// writeChunk is how many encoded bytes a stream gathers before it writes
// them; a deep queue is written in pieces of about this size and flushed
// once at the end.
const writeChunk = 64 << 10

// frameBufs holds the buffers message frames are encoded into. A stream
// takes one for each batch and gives it back after the write, so an idle
// stream holds no buffer at all, however large its last burst was.
var frameBufs = sync.Pool{New: func() any { return new([]byte) }}

// keepaliveEvent is every keepalive event, encoded once.
var keepaliveEvent = AppendFrame(nil, EventKeepalive, keepaliveData, 0)

// Stream writes the frames of one SSE response.
type Stream struct {
	w     io.Writer
	ctl   Controller
	opts  Options
	guard SpinGuard
	// keepalive is the keepalive frame of this stream's kind.
	keepalive []byte
	// resumeSeq and resumed are what the opening frame says the client
	// has seen, and the frames it has not, written right after it.
	resumeSeq uint64
	resumed   []Frame
	// keepaliveDue is set by the keepalive timer, which then wakes the
	// queue; the stream's goroutine writes the keepalive.
	keepaliveDue atomic.Bool

	// mu is held for every write, by Run or by Deliver, and guards what
	// follows.
	mu      sync.Mutex
	q       Queue
	journal Journal     // q's, if it numbers frames and IDPrefix is set
	lastSeq uint64      // the last frame written of those journal numbered
	seqs    []uint64    // the numbers of batch's messages
	timer   *time.Timer // the keepalive timer, nil without keepalives
	live    bool        // the endpoint is written and Run has not returned
	err     error       // a Deliver's write failed: Run returns it
	frame   []byte      // what send writes next: the opening frames or a keepalive
	batch   [][]byte

	// sendOp and messagesOp are send and writeMessages bound once, so that
	// handing them to Options.Offload costs nothing; they leave their
	// error in opErr.
	sendOp, messagesOp func()
	opErr              error

	// Messages counts the message frames written; read it after Run
	// returns. Keepalives are reported through Options.OnKeepalive.
	Messages int
}

// NewStream returns a stream that writes to w and flushes through ctl.
func NewStream(w io.Writer, ctl Controller, opts Options) *Stream {
	s := &Stream{
		w:         w,
		ctl:       ctl,
		opts:      opts,
		guard:     NewSpinGuard(opts.RapidYieldMax, opts.RapidYieldWindow),
		keepalive: keepaliveComment,
	}
	if opts.KeepaliveEvent {
		s.keepalive = keepaliveEvent
	}
	s.sendOp = func() { s.opErr = s.send() }
	s.messagesOp = func() { s.opErr = s.writeMessages() }
	return s
}

// do runs op (sendOp or messagesOp), through Options.Offload if set, and
// returns its error.
func (s *Stream) do(op func()) error {
	if s.opts.Offload != nil {
		s.opts.Offload(op)
	} else {
		op()
	}
	err := s.opErr
	s.opErr = nil
	return err
}

// Resume makes the stream continue a session a client had another stream
// of: the opening frame's id says the client has seen every frame up to
// seq, and frames, numbered after it, are written right after the
// opening frame with their own ids. Call it before Run.
func (s *Stream) Resume(seq uint64, frames []Frame) {
	s.resumeSeq, s.resumed = seq, frames
}

// Run writes the endpoint frame, then every message taken from q as a
// message frame, with keepalives while idle, until q is closed (it
// returns nil), ctx ends (ErrClientGone), a write fails or times out
// (ErrSendTimeout or the write error), or the spin guard trips (*SpinError).
//
// Everything waiting in the queue is written together and flushed once, so
// a burst costs a few writes per batch, not one per frame.
func (s *Stream) Run(ctx context.Context, endpoint string, q Queue) error {
	if err := s.open(endpoint, q); err != nil {
		return err
	}
	if s.timer != nil {
		defer s.timer.Stop()
	}
	defer func() {
		s.mu.Lock()
		s.live = false // no Deliver may write once the handler returns
		s.mu.Unlock()
	}()

	for {
		select {
		case <-ctx.Done():
			return s.ended()
		case <-q.Ready():
		}
		if done, err := s.step(); done {
			return err
		}
	}
}

// ended is why Run ends when its context does: a write that failed
// meanwhile (Deliver's) is the cause, and its failure often ends the
// context (the session it closes ends the stream); otherwise the client
// went away. It waits for a write in progress, at most send_timeout.
func (s *Stream) ended() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	return ErrClientGone
}

// open writes the endpoint frame and starts the keepalive timer. (Every
// use of mu unlocks in a defer: a write may panic, and a stream left
// locked would never end.)
func (s *Stream) open(endpoint string, q Queue) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q = q
	if s.opts.IDPrefix != "" {
		s.journal, _ = q.(Journal)
	}
	if s.journal != nil {
		s.frame = AppendFrameID(nil, EventEndpoint, s.opts.IDPrefix, s.resumeSeq, []byte(endpoint), s.opts.Retry)
		for _, f := range s.resumed {
			s.frame = AppendFrameID(s.frame, EventMessage, s.opts.IDPrefix, f.Seq, f.Data, 0)
			s.lastSeq = f.Seq
		}
	} else {
		s.frame = AppendFrame(nil, EventEndpoint, []byte(endpoint), s.opts.Retry)
	}
	if s.opts.Keepalive > 0 {
		s.frame = append(s.frame, s.keepalive...)
	}
	err := s.do(s.sendOp)
	s.frame = s.keepalive
	if err != nil {
		return err
	}
	if s.journal != nil && len(s.resumed) > 0 {
		s.journal.Flushed(s.lastSeq)
	}
	s.Messages += len(s.resumed)
	s.resumed = nil
	if s.opts.Keepalive > 0 {
		if s.opts.OnKeepalive != nil {
			s.opts.OnKeepalive()
		}
		s.timer = time.AfterFunc(s.opts.Keepalive, func() {
			s.keepaliveDue.Store(true)
			q.Wake()
		})
	}
	s.live = true
	return nil
}

// step does what a wake-up of Run calls for: it writes what is queued, or
// a keepalive that is due, and reports whether the stream is over.
func (s *Stream) step() (done bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return true, s.err
	}
	var closed bool
	s.batch, closed = s.take(s.batch[:0])
	if closed {
		clear(s.batch)
		return true, nil
	}
	wrote := len(s.batch) > 0
	if wrote {
		err := s.do(s.messagesOp)
		s.release()
		if err != nil {
			return true, err
		}
	}
	// A keepalive is due only after a silence: messages just written
	// restart the interval instead.
	if s.keepaliveDue.Swap(false) && !wrote {
		if err := s.do(s.sendOp); err != nil {
			return true, err
		}
		if s.opts.OnKeepalive != nil {
			s.opts.OnKeepalive()
		}
		if s.guard.Idle(time.Now()) {
			return true, &SpinError{Idle: s.guard.Total(), Max: s.opts.RapidYieldMax, Window: s.opts.RapidYieldWindow}
		}
		wrote = true
	}
	if wrote && s.timer != nil {
		s.timer.Reset(s.opts.Keepalive)
	}
	return false, nil
}

// Deliver writes msg to the client at once, on the caller's goroutine,
// after whatever is still queued, if no other write is under way; it
// reports false, having written nothing, when one is (or when the stream
// is not running), and the caller queues msg instead. A message relayed
// from the upstream so reaches the client without waking the stream's
// goroutine. A failed write ends the stream: Run returns its error.
func (s *Stream) Deliver(msg []byte) (delivered bool, err error) {
	if !s.mu.TryLock() {
		return false, nil
	}
	defer func() {
		// The caller is not a handler, so nothing above it would recover
		// a panic from the response writer (http.ErrAbortHandler, say):
		// it ends the stream like a failed write.
		if p := recover(); p != nil {
			s.err = fmt.Errorf("writing to client: panic: %v", p)
			delivered, err = true, s.err
			s.q.Wake()
		}
		s.mu.Unlock()
	}()
	if !s.live || s.err != nil {
		return false, nil
	}
	var closed bool
	s.batch, closed = s.take(s.batch[:0])
	if closed {
		clear(s.batch)
		return false, nil
	}
	if s.journal != nil {
		seq, ok := s.journal.Stamp(msg)
		if !ok {
			// Another stream holds the queue now; what was just taken is
			// numbered, and goes to that stream as a replay.
			clear(s.batch)
			return false, nil
		}
		s.seqs = append(s.seqs, seq)
	}
	s.batch = append(s.batch, msg)
	err = s.writeMessages()
	s.release()
	if err != nil {
		s.err = err
		s.q.Wake()
		return true, err
	}
	s.keepaliveDue.Store(false)
	if s.timer != nil {
		s.timer.Reset(s.opts.Keepalive)
	}
	return true, nil
}

// take takes what waits in the queue, numbered if the queue numbers.
func (s *Stream) take(dst [][]byte) ([][]byte, bool) {
	if s.journal == nil {
		return s.q.Take(dst)
	}
	n := len(dst)
	dst, first, closed := s.journal.TakeNumbered(dst)
	s.seqs = s.seqs[:0]
	for i := range dst[n:] {
		s.seqs = append(s.seqs, first+uint64(i))
	}
	return dst, closed
}

// release lets go of the payloads just written, and of a batch slice a
// burst grew, so that an idle stream holds little memory.
func (s *Stream) release() {
	clear(s.batch)
	if cap(s.batch) > 256 {
		s.batch = nil
		s.seqs = nil
	}
}

// writeMessages writes the batch as message frames and flushes once.
func (s *Stream) writeMessages() error {
	bp := frameBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 2*writeChunk { // a rare giant is not worth keeping
			*bp = (*bp)[:0]
			frameBufs.Put(bp)
		}
	}()
	buf := (*bp)[:0]
	for i, msg := range s.batch {
		if s.journal != nil {
			s.lastSeq = s.seqs[i]
			buf = AppendFrameID(buf, EventMessage, s.opts.IDPrefix, s.lastSeq, msg, 0)
		} else {
			buf = AppendFrame(buf, EventMessage, msg, 0)
		}
		s.Messages++
		if len(buf) >= writeChunk {
			if err := s.write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	*bp = buf
	if len(buf) > 0 {
		if err := s.write(buf); err != nil {
			return err
		}
	}
	if err := s.flush(); err != nil {
		return err
	}
	if s.journal != nil {
		s.journal.Flushed(s.lastSeq)
	}
	if s.opts.OnMessages != nil {
		s.opts.OnMessages(len(s.batch))
	}
	return nil
}

// send writes and flushes s.frame under the send timeout.
func (s *Stream) send() error {
	if err := s.write(s.frame); err != nil {
		return err
	}
	return s.flush()
}

// write writes p. Each write gets the whole send timeout: a client that
// reads steadily through a long burst is not cut, one that stops is.
func (s *Stream) write(p []byte) error {
	if s.opts.SendTimeout > 0 {
		// Not every writer supports deadlines (http.ErrNotSupported); the
		// stream still works there, only without the cut.
		_ = s.ctl.SetWriteDeadline(time.Now().Add(s.opts.SendTimeout))
	}
	if _, err := s.w.Write(p); err != nil {
		return classify(err)
	}
	return nil
}

func (s *Stream) flush() error {
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
