package mcpsse

// Deleting done inbox entries (cluster mode): one goroutine per instance
// acks for every session it owns, all that gathered in one pipelined
// round trip, rather than a round trip per session and answer.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
)

// acker holds the sessions with entries ready to delete.
type acker struct {
	mu    sync.Mutex
	queue []*ownedSession
	wake  chan struct{}
}

func newAcker() *acker { return &acker{wake: make(chan struct{}, 1)} }

// add queues o, whose acking flag the caller has just set.
func (a *acker) add(o *ownedSession) {
	a.mu.Lock()
	a.queue = append(a.queue, o)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *acker) take() []*ownedSession {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.queue
	a.queue = nil
	return q
}

// ackLoop runs the acker until the member leaves the cluster.
func (m *clusterMember) ackLoop() {
	defer close(m.ackDone)
	for {
		select {
		case <-m.stop:
			return
		case <-m.acks.wake:
		}
		m.ackTurn(m.acks.take())
	}
}

// ackTurn acks what the sessions of queue have ready, in one round trip.
func (m *clusterMember) ackTurn(queue []*ownedSession) {
	var sessions []*ownedSession
	var reqs []cluster.AckRequest
	var taken [][]string
	for _, o := range queue {
		o.mu.Lock()
		ids := o.ready
		o.ready = nil
		if len(ids) == 0 || o.released {
			o.acking = false
			o.mu.Unlock()
			continue
		}
		o.mu.Unlock()
		up, proto := o.sess.Upstream()
		sessions = append(sessions, o)
		taken = append(taken, ids)
		reqs = append(reqs, cluster.AckRequest{Session: o.sess.ID, Epoch: o.epoch.Load(),
			Upstream: cluster.Upstream{ID: up, Protocol: proto, Initialized: o.sess.Initialized()}, Entries: ids})
	}
	if len(reqs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.node.Lease()/3)
	errs := m.node.AckAll(ctx, reqs)
	cancel()
	for i, o := range sessions {
		err := errs[i]
		switch {
		case err == nil:
			for _, entry := range taken[i] {
				m.letGo(o.sess.ID, entry) // posted here, if so
			}
			o.mu.Lock()
			again := len(o.ready) > 0 && !o.released
			o.acking = again
			o.mu.Unlock()
			if again {
				m.acks.add(o)
			}
		case errors.Is(err, cluster.ErrFenced):
			// At once, not at the next renewal: whatever this copy
			// dispatches now, another owner dispatches too.
			o.release("fenced: an ack found the session owned at a later epoch")
		default:
			m.noteRedis(err)
			o.mu.Lock()
			o.ready = append(taken[i], o.ready...)
			o.acking = false
			o.mu.Unlock()
			if !o.sess.Closed() {
				time.AfterFunc(time.Second, func() {
					o.mu.Lock()
					start := o.startAck()
					o.mu.Unlock()
					if start {
						m.acks.add(o)
					}
				})
			}
		}
	}
}
