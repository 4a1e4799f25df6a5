package mcpsse

// Cluster membership: this process's node in the cluster, the sessions it
// owns, and what other instances ask of it.

import (
	"context"
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
	down       atomic.Bool
	// unreadable is when each key id no key of the ring has was last
	// logged, so that a misconfigured rotation logs once a minute.
	unreadable sync.Map // string -> time.Time
	acks       *acker
	stop       chan struct{}
	done       chan struct{} // renew has returned
	ackDone    chan struct{} // ackLoop has returned
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
		m := &clusterMember{logger: logger.Named("cluster"), acks: newAcker(),
			stop: make(chan struct{}), done: make(chan struct{}), ackDone: make(chan struct{})}
		cfg.Unreadable = m.noteUnreadable
		node, err := cluster.Open(cfg, m)
		if err != nil {
			return nil, err
		}
		m.node = node
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

// Destruct leaves the cluster: the sessions still owned are marked
// detached, so that their clients re-attach elsewhere at once, and the
// connection closes.
func (m *clusterMember) Destruct() error {
	close(m.stop)
	<-m.done
	<-m.ackDone
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
	if o, ok := m.ownedSession(d.Session); ok {
		o.offer(d.Prev, d.ID, d.Posted)
	}
}

// Subscribed implements cluster.Events: doorbells rung while the node was
// not subscribed are lost, so every inbox is looked at, and claims that
// may have lapsed meanwhile are renewed.
func (m *clusterMember) Subscribed() {
	go func() {
		m.refresh()
		m.owned.Range(func(_, v any) bool {
			go v.(*ownedSession).drain()
			return true
		})
	}()
}

// Control implements cluster.Events.
func (m *clusterMember) Control(c cluster.Control) {
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
