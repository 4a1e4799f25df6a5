package mcpsse

// Cluster membership: this process's node in the cluster, the sessions it
// owns, and what other instances ask of it.

import (
	"context"
	"errors"
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
		m.logger.Info("joined the cluster", zap.String("instance", node.Instance()))
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
