package mcpsse

// Cluster membership: this process's node in the cluster, the sessions it
// owns, and what other instances ask of it.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// members keeps the membership across reloads with the same cluster
// settings, as stores keeps the sessions.
var members = caddy.NewUsagePool()

// clusterMember is this process in the cluster.
type clusterMember struct {
	node   *cluster.Node
	logger *zap.Logger
	// owned are the sessions whose streams this instance holds (or held,
	// while detached), by id.
	owned sync.Map // string -> *ownedSession
	// known caches, for POSTs to sessions owned elsewhere, who owns each
	// session and on which handler: both are fixed for a session's life.
	known sync.Map // string -> knownSession
	// broadcasts are the admin API's broadcasts waiting for every
	// instance's count, by id.
	broadcasts sync.Map // string -> chan int
	// held are the POSTs this instance put in inboxes, their bodies'
	// bytes still counted against max_pending_bytes until their entries
	// are done, by "session entry".
	held sync.Map // string -> *heldPost
	down atomic.Bool
	// unreadable is when each key id no key of the ring has was last
	// logged, so that a misconfigured rotation logs once a minute.
	unreadable sync.Map // string -> time.Time
	// evictionChecked: Redis was found to evict nothing, or the config
	// accepts eviction.
	evictionChecked atomic.Bool
	acks            *acker
	// ready is closed once node is set: the node delivers events from
	// its own goroutine, which Open starts before it returns the node.
	ready   chan struct{}
	stop    chan struct{}
	done    chan struct{} // renew has returned
	ackDone chan struct{} // ackLoop has returned
}

// heldPost is one POST whose inbox entry is not yet done.
type heldPost struct {
	release func() // gives back its bytes; idempotent
	since   time.Time
}

// hold keeps a posted body's bytes counted until its inbox entry is
// done: the owner's ack tells (Acked, or ackTurn here), and renew looks
// in Redis for entries held longer than a renewal, for an ack whose
// notice was lost.
func (m *clusterMember) hold(session, entry string, release func()) {
	m.held.Store(session+" "+entry, &heldPost{release: release, since: time.Now()})
}

// letGo gives back the bytes of a held POST whose entry is done.
func (m *clusterMember) letGo(session, entry string) {
	if v, ok := m.held.LoadAndDelete(session + " " + entry); ok {
		v.(*heldPost).release()
	}
}

// Acked implements cluster.Events: the owner deleted an entry this
// instance posted.
func (m *clusterMember) Acked(session, entry string) {
	<-m.ready
	m.letGo(session, entry)
}

// checkHeld gives back the bytes of held POSTs whose entries are no
// longer in Redis (done, or their session ended) though no notice came.
func (m *clusterMember) checkHeld() {
	before := time.Now().Add(-m.node.Lease() / 3)
	var refs []cluster.EntryRef
	var keys []string
	m.held.Range(func(k, v any) bool {
		if v.(*heldPost).since.Before(before) {
			session, entry, _ := strings.Cut(k.(string), " ")
			refs = append(refs, cluster.EntryRef{Session: session, Entry: entry})
			keys = append(keys, k.(string))
		}
		return len(refs) < 4096
	})
	if len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.node.Lease()/3)
	defer cancel()
	exists, err := m.node.Existing(ctx, refs)
	if err != nil {
		m.noteRedis(err)
		return
	}
	for i, ok := range exists {
		if !ok {
			if v, found := m.held.LoadAndDelete(keys[i]); found {
				v.(*heldPost).release()
			}
		}
	}
}

// knownSession is what a POST needs to check before reading its body.
type knownSession struct {
	identity, scope string
	until           time.Time
}

// knownFor is how long a lookup is trusted; the post script checks again.
const knownFor = 30 * time.Second

func loadMember(key string, cfg cluster.Config, logger *zap.Logger) (*clusterMember, error) {
	v, _, err := members.LoadOrNew(key, func() (caddy.Destructor, error) {
		m := &clusterMember{logger: logger.Named("cluster"), acks: newAcker(), ready: make(chan struct{}),
			stop: make(chan struct{}), done: make(chan struct{}), ackDone: make(chan struct{})}
		cfg.Unreadable = m.noteUnreadable
		// go-redis logs through one logger per process: the newest
		// member's, in Caddy's logs rather than on stderr.
		redisLogger := m.logger.Named("redis")
		cluster.RouteRedisLogs(func(line string) { redisLogger.Warn(line) })
		node, err := cluster.Open(cfg, m)
		if err != nil {
			return nil, err
		}
		m.node = node
		close(m.ready)
		if err := m.checkEviction(cfg); err != nil {
			_ = node.Close()
			return nil, err
		}
		go m.renew()
		go m.ackLoop()
		m.logger.Info("joined the cluster", zap.String("instance", node.Instance()), zap.String("key_id", cfg.Keys.ID()))
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*clusterMember), nil
}

// checkEviction refuses a Redis that may evict keys, unless the config
// accepts it. A Redis that does not answer yet is checked again when the
// node subscribes (see Subscribed).
func (m *clusterMember) checkEviction(cfg cluster.Config) error {
	if cfg.AllowEviction {
		m.evictionChecked.Store(true)
		return nil
	}
	err := m.node.CheckEviction(context.Background()) // bounded by the node's timeout
	switch {
	case err == nil:
		m.evictionChecked.Store(true)
		return nil
	case errors.Is(err, cluster.ErrEvicting):
		return err
	}
	m.logger.Warn("could not read Redis's maxmemory-policy at start; it is checked when Redis answers", zap.Error(err))
	return nil
}

// Destruct leaves the cluster: the sessions still owned are marked
// detached, so that their clients re-attach elsewhere at once, and the
// connection closes.
func (m *clusterMember) Destruct() error {
	close(m.stop)
	<-m.done
	<-m.ackDone
	// The store outlives the membership: what it held for entries of
	// this membership is given back.
	m.held.Range(func(k, v any) bool {
		m.held.Delete(k)
		v.(*heldPost).release()
		return true
	})
	var owned []cluster.Owned
	m.owned.Range(func(_, v any) bool {
		o := v.(*ownedSession)
		st := o.state()
		st.Detached = true
		owned = append(owned, st)
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := m.node.Refresh(ctx, owned)
	m.logger.Info("left the cluster; its sessions wait there, detached, for their clients to re-attach elsewhere",
		zap.String("instance", m.node.Instance()), zap.Int("sessions", len(owned)), zap.Error(err))
	return m.node.Close()
}

// renew renews the claims on owned sessions every third of the lease,
// lets go of the ones taken over elsewhere, and forgets stale lookups.
func (m *clusterMember) renew() {
	defer close(m.done)
	t := time.NewTicker(m.node.Lease() / 3)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.refresh()
		m.checkHeld()
		now := time.Now()
		m.known.Range(func(k, v any) bool {
			if now.After(v.(knownSession).until) {
				m.known.Delete(k)
			}
			return true
		})
	}
}

func (m *clusterMember) refresh() {
	var owned []cluster.Owned
	m.owned.Range(func(_, v any) bool {
		owned = append(owned, v.(*ownedSession).state())
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), m.node.Lease()/3)
	defer cancel()
	fenced, err := m.node.Refresh(ctx, owned)
	m.noteRedis(err)
	for _, id := range fenced {
		if o, ok := m.ownedSession(id); ok {
			o.release("fenced: another instance owns the session now")
		}
	}
}

// noteUnreadable logs, once a minute per key id, what came through Redis
// that no secret of this instance opens: it is ignored (an inbox entry
// is dropped), so the instances' secrets must agree.
func (m *clusterMember) noteUnreadable(what, keyID string) {
	now := time.Now()
	if v, ok := m.unreadable.Load(keyID); ok && now.Sub(v.(time.Time)) < time.Minute {
		return
	}
	m.unreadable.Store(keyID, now)
	m.logger.Error("dropping what another instance sent through Redis: no secret of this instance opens it; every instance needs the same secret, and the previous one in previous_secrets while a rotation goes on",
		zap.String("what", what), zap.String("key_id", keyID))
}

// noteRedis logs when Redis stops and starts answering, once each way.
func (m *clusterMember) noteRedis(err error) {
	if err != nil {
		if !m.down.Swap(true) {
			m.logger.Error("Redis unreachable: new streams are refused and messages for sessions held elsewhere get 503 until it is back; streams held here go on",
				zap.Error(err))
		}
		return
	}
	if m.down.Swap(false) {
		m.logger.Info("Redis reachable again")
	}
}

func (m *clusterMember) ownedSession(id string) (*ownedSession, bool) {
	v, ok := m.owned.Load(id)
	if !ok {
		return nil, false
	}
	return v.(*ownedSession), true
}

// Doorbell implements cluster.Events: a message waits in the inbox of a
// session this instance owns.
func (m *clusterMember) Doorbell(d cluster.Doorbell) {
	<-m.ready
	if o, ok := m.ownedSession(d.Session); ok {
		o.offer(d.Prev, d.ID, d.Posted)
	}
}

// Subscribed implements cluster.Events: doorbells rung while the node was
// not subscribed are lost, so every inbox is looked at, and claims that
// may have lapsed meanwhile are renewed.
func (m *clusterMember) Subscribed() {
	<-m.ready
	go func() {
		if !m.evictionChecked.Load() {
			// Redis did not answer at start: its policy is read now. An
			// evicting Redis cannot be refused any more (Caddy runs): it
			// is logged as an error, every time the node subscribes.
			ctx, cancel := context.WithTimeout(context.Background(), m.node.Lease())
			err := m.node.CheckEviction(ctx)
			cancel()
			switch {
			case err == nil:
				m.evictionChecked.Store(true)
			case errors.Is(err, cluster.ErrEvicting):
				m.logger.Error("Redis may evict sessions", zap.Error(err))
			}
		}
		m.refresh()
		m.owned.Range(func(_, v any) bool {
			go v.(*ownedSession).drain()
			return true
		})
	}()
}

// Control implements cluster.Events.
func (m *clusterMember) Control(c cluster.Control) {
	<-m.ready
	switch c.Op {
	case cluster.OpBroadcast:
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			sent := 0
			if st, ok := currentStore(); ok {
				st.Range(func(s *session.Session) bool {
					if !s.Closed() && push(ctx, s, c.Data) == nil {
						sent++
					}
					return true
				})
			}
			_, _ = m.node.Send(ctx, c.From, cluster.Control{Op: cluster.OpBroadcastSent, ID: c.ID, Count: sent})
		}()
		return
	case cluster.OpBroadcastSent:
		if v, ok := m.broadcasts.Load(c.ID); ok {
			select {
			case v.(chan int) <- c.Count:
			default:
			}
		}
		return
	}
	o, ok := m.ownedSession(c.ID)
	if !ok {
		return
	}
	switch c.Op {
	case cluster.OpClose:
		o.sess.Close(session.ReasonAdmin)
	case cluster.OpPush:
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), adminPushWait)
			defer cancel()
			_ = push(ctx, o.sess, c.Data)
		}()
	case cluster.OpReleased:
		if c.Epoch > o.epoch.Load() {
			o.release("taken over by instance " + c.From)
		}
	}
}

var _ cluster.Events = (*clusterMember)(nil)
