package session

import (
	"context"
	"sync"
	"time"
)

// queue is a session's bounded outbound queue. It is a slice behind a
// mutex rather than a buffered channel so that an idle session costs
// nothing for its capacity (a channel allocates all of it up front), and
// so that the stream writer can take everything waiting in one call.
type queue struct {
	mu      sync.Mutex
	items   [][]byte
	max     int
	waiters int // senders waiting in push for room
	// ready (the attached stream's channel, see Attachment) holds a
	// token when items may be waiting; space holds one when items were
	// taken. Both have capacity 1: a token stands for "look
	// again", not for one item. space is made by the first sender that
	// has to wait, so that sessions which never fill up do not pay for it.
	ready chan struct{}
	space chan struct{}
}

func newQueue(max int) queue {
	return queue{max: max, ready: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// tryPush appends msg unless the queue is full.
func (q *queue) tryPush(msg []byte) bool {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, msg)
	// A sender woken by take's one space token passes it on while room
	// remains, so every waiting sender gets its turn.
	var wake chan struct{}
	if q.waiters > 0 && len(q.items) < q.max {
		wake = q.space
	}
	ready := q.ready
	q.mu.Unlock()
	signal(ready)
	if wake != nil {
		signal(wake)
	}
	return true
}

// take moves every waiting message to dst, if ready is the attached
// stream's channel; current reports whether it is.
func (q *queue) take(dst [][]byte, ready chan struct{}) (_ [][]byte, current bool) {
	q.mu.Lock()
	if q.ready != ready {
		q.mu.Unlock()
		return dst, false
	}
	dst = append(dst, q.items...)
	clear(q.items)
	q.items = q.items[:0]
	if cap(q.items) > 4*q.max/3+16 {
		q.items = nil // do not keep a burst's worth of slots for ever
	}
	space := q.space
	q.mu.Unlock()
	if space != nil {
		signal(space)
	}
	return dst, true
}

// takeNumbered is take that also records what it takes in j, under the
// queue's lock, so that no message leaves the queue unnumbered and a new
// attachment (setReady) sees every message the old one took.
func (q *queue) takeNumbered(dst [][]byte, ready chan struct{}, j *journal) (_ [][]byte, first uint64, current bool) {
	q.mu.Lock()
	if q.ready != ready {
		q.mu.Unlock()
		return dst, 0, false
	}
	first = j.peekNext()
	for _, m := range q.items {
		j.record(m)
	}
	dst = append(dst, q.items...)
	clear(q.items)
	q.items = q.items[:0]
	if cap(q.items) > 4*q.max/3+16 {
		q.items = nil
	}
	space := q.space
	q.mu.Unlock()
	if space != nil {
		signal(space)
	}
	return dst, first, true
}

// stamp records msg in j if ready is still the attached stream's.
func (q *queue) stamp(msg []byte, ready chan struct{}, j *journal) (uint64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ready != ready {
		return 0, false
	}
	return j.record(msg), true
}

// setReady makes ready the channel pushes signal (the attached stream's).
func (q *queue) setReady(ready chan struct{}) {
	q.mu.Lock()
	q.ready = ready
	q.mu.Unlock()
}

// wake signals the attached stream.
func (q *queue) wake() {
	q.mu.Lock()
	ready := q.ready
	q.mu.Unlock()
	signal(ready)
}

// push appends msg, waiting up to wait for room while the queue is full.
// It reports false if there was no room in time or stop ended first.
func (q *queue) push(ctx context.Context, msg []byte, wait time.Duration, stop <-chan struct{}) (ok bool, err error) {
	if q.tryPush(msg) {
		return true, nil
	}
	q.mu.Lock()
	q.waiters++
	if q.space == nil {
		q.space = make(chan struct{}, 1)
	}
	space := q.space
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.waiters--
		q.mu.Unlock()
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-space:
			if q.tryPush(msg) {
				return true, nil
			}
		case <-timer.C:
			return false, nil
		case <-stop:
			return false, ErrClosed
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
