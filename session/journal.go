package session

import (
	"sync"
	"sync/atomic"
)

// DefaultReplayBytes bounds the bytes a session's replay buffer holds,
// whatever its frame count: a few large answers must not pin megabytes
// per session. The oldest frames go first.
const DefaultReplayBytes = 1 << 20

// Entry is a frame written to the client: its sequence number (its SSE
// id, after the resume token) and its message.
type Entry struct {
	Seq  uint64
	Data []byte
}

// journal numbers the frames written to a session's client and keeps the
// most recent ones, so that a client that reconnects with Last-Event-ID
// gets, once each, the frames after the last it saw. It allocates nothing
// until a message is written, so an idle stream costs nothing more.
type journal struct {
	mu       sync.Mutex
	max      int // frames kept; 0 keeps none
	maxBytes int
	last     uint64 // the last sequence number given
	flushed  uint64 // every frame up to it was written and flushed
	entries  []Entry
	bytes    int
	// onFlushed is told each advance of flushed (cluster mode acks the
	// messages whose answers have reached the client).
	onFlushed atomic.Pointer[func(uint64)]
}

func (j *journal) record(msg []byte) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.last++
	if j.max == 0 {
		return j.last
	}
	j.entries = append(j.entries, Entry{j.last, msg})
	j.bytes += len(msg)
	drop := 0
	for len(j.entries)-drop > j.max || (j.bytes > j.maxBytes && len(j.entries)-drop > 1) {
		j.bytes -= len(j.entries[drop].Data)
		j.entries[drop] = Entry{}
		drop++
	}
	if drop > 0 {
		j.entries = j.entries[drop:]
	}
	return j.last
}

// peekNext is the number the next frame will get.
func (j *journal) peekNext() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last + 1
}

func (j *journal) markFlushed(seq uint64) {
	j.mu.Lock()
	advanced := seq > j.flushed
	if advanced {
		j.flushed = seq
	}
	j.mu.Unlock()
	if f := j.onFlushed.Load(); advanced && f != nil {
		(*f)(seq)
	}
}

// Replay returns the frames the journal holds after seq, in order, and
// how many frames after seq it no longer holds. ok is false for a seq the
// session never gave, which no honest client can send.
func (s *Session) Replay(seq uint64) (frames []Entry, lost uint64, ok bool) {
	j := &s.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	if seq > j.last {
		return nil, 0, false
	}
	first := j.last + 1 // the oldest held, if any
	if len(j.entries) > 0 {
		first = j.entries[0].Seq
	}
	if first > seq+1 {
		lost = first - (seq + 1)
	}
	for _, e := range j.entries {
		if e.Seq > seq {
			frames = append(frames, e)
		}
	}
	return frames, lost, true
}

// Unflushed is what a client that reconnects without saying what it saw
// has missed for certain: the frames after the last one written and
// flushed (those whose write failed or never finished). It returns the
// last flushed sequence number and those frames.
func (s *Session) Unflushed() (seq uint64, frames []Entry) {
	s.journal.mu.Lock()
	seq = s.journal.flushed
	s.journal.mu.Unlock()
	frames, _, _ = s.Replay(seq)
	return seq, frames
}

// SetReplayLimit sets how many recent frames the session keeps for
// replay (0: none); call it before the session is streamed.
func (s *Session) SetReplayLimit(frames int) {
	s.journal.max = frames
}

// OutMark is a frame number that every message handed to the client so
// far will not exceed once numbered: the last number given plus what
// waits in the queue. Once FlushedSeq reaches it, all of them reached the
// client's socket.
func (s *Session) OutMark() uint64 {
	s.queue.mu.Lock() // the queue's lock, then the journal's, as takeNumbered
	defer s.queue.mu.Unlock()
	s.journal.mu.Lock()
	defer s.journal.mu.Unlock()
	return s.journal.last + uint64(len(s.queue.items))
}

// FlushedSeq is the number of the last frame known flushed to the client.
func (s *Session) FlushedSeq() uint64 {
	s.journal.mu.Lock()
	defer s.journal.mu.Unlock()
	return s.journal.flushed
}

// OnFlushed sets f to be called with the new FlushedSeq each time it
// advances, on the stream writer's goroutine: f must not block.
func (s *Session) OnFlushed(f func(seq uint64)) { s.journal.onFlushed.Store(&f) }
