// Package cluster shares MCP HTTP+SSE sessions between instances through
// Redis. The instance that holds a session's stream owns it; the
// session's metadata (owner, fencing epoch, identity, upstream state,
// the resume token's hash) lives in Redis with a TTL its owner renews,
// and the messages clients POST to any instance wait in the session's
// inbox (a Redis stream) until the owner has dispatched them and flushed
// their answers. What clients post, and what instances tell each other,
// crosses Redis encrypted (seal.go); the metadata the scripts compare
// stays readable. It knows nothing of Caddy.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config says how an instance reaches the cluster.
type Config struct {
	// URL is the Redis server: redis://[user:password@]host:port/db, or
	// rediss:// for TLS.
	URL string
	// Prefix starts every key and channel name, so that clusters can
	// share one Redis.
	Prefix string
	// Instance names this instance in the cluster; unique per process.
	Instance string
	// DialTimeout bounds connecting to Redis; Timeout one command.
	DialTimeout time.Duration
	Timeout     time.Duration
	// Lease is how long an owner's claim on its sessions holds without
	// being renewed; it is renewed every Lease/3.
	Lease time.Duration
	// AllowEviction accepts a Redis whose maxmemory-policy may evict
	// keys (see CheckEviction); without it the instance refuses one.
	AllowEviction bool
	// Keys seal what crosses Redis (seal.go); required.
	Keys *Keyring `json:"-"`
	// Unreadable, if set, hears of each sealed value no key of the ring
	// opens (what: "inbox entry", "doorbell" or "control"; keyID: the id
	// the value names, "" if it names none), which is then ignored.
	Unreadable func(what, keyID string) `json:"-"`
}

// Defaults of Config.
const (
	DefaultPrefix      = "mcp_sse"
	DefaultDialTimeout = 2 * time.Second
	DefaultTimeout     = time.Second
	DefaultLease       = 6 * time.Second
)

// Events is what a node hands to its instance: doorbells of session
// inboxes, control messages, and the news that it (re)subscribed, after
// which doorbells rung while it was not listening must be looked for.
type Events interface {
	Doorbell(d Doorbell)
	Control(c Control)
	Subscribed()
	// Acked says that the owner of session has deleted inbox entry,
	// which this instance posted: it is done.
	Acked(session, entry string)
}

// Node is one instance's membership of the cluster.
type Node struct {
	cfg    Config
	rdb    *redis.Client
	keys   keys
	events Events
	ring   atomic.Pointer[Keyring]

	ctx    context.Context
	cancel context.CancelFunc
	ps     *redis.PubSub
	done   chan struct{}
	once   sync.Once
}

// DefaultInstance is a name unique to this process: the host name, the
// pid and a few random bytes (a restarted process is a new instance).
func DefaultInstance() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "caddy"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// ParseURL checks a cluster URL as Open will read it.
func ParseURL(u string) error {
	if !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") {
		return fmt.Errorf("cluster URL %q: want redis:// or rediss://", u)
	}
	_, err := redis.ParseURL(u)
	return err
}

// Open connects the node (lazily: no command is sent yet) and subscribes
// to its channels; events are delivered on a goroutine of the node's
// until Close.
func Open(cfg Config, events Events) (*Node, error) {
	if err := ParseURL(cfg.URL); err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Keys == nil {
		return nil, errors.New("cluster: no secret: what crosses Redis is encrypted with it")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Instance == "" {
		cfg.Instance = DefaultInstance()
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	opt.DialTimeout = cfg.DialTimeout
	opt.ReadTimeout = cfg.Timeout
	opt.WriteTimeout = cfg.Timeout
	opt.ContextTimeoutEnabled = true
	// One retry covers a pooled connection a Redis restart closed; more
	// would only make a caller wait longer on a Redis that is down.
	opt.MaxRetries = 1
	opt.MinRetryBackoff = 8 * time.Millisecond
	opt.MaxRetryBackoff = 64 * time.Millisecond
	opt.ClientName = "mcp_sse:" + cfg.Instance
	n := &Node{cfg: cfg, rdb: redis.NewClient(opt), keys: keys{cfg.Prefix}, events: events, done: make(chan struct{})}
	n.ring.Store(cfg.Keys)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.ps = n.rdb.Subscribe(n.ctx, n.keys.node(cfg.Instance), n.keys.all())
	go n.receive()
	return n, nil
}

// Instance is the node's name in the cluster.
func (n *Node) Instance() string { return n.cfg.Instance }

// SetKeys makes kr the keyring (a reload that rotates the secret keeps
// the node, and its sessions).
func (n *Node) SetKeys(kr *Keyring) {
	if kr != nil {
		n.ring.Store(kr)
	}
}

// unreadable reports a value no key opened.
func (n *Node) unreadable(what, keyID string) {
	if n.cfg.Unreadable != nil {
		n.cfg.Unreadable(what, keyID)
	}
}

// Lease is how long the node's claims hold unrenewed.
func (n *Node) Lease() time.Duration { return n.cfg.Lease }

// Close leaves the cluster: the subscription and connections end. The
// node's sessions stay in Redis until their TTL runs out (or another
// instance takes them over).
func (n *Node) Close() error {
	n.once.Do(func() {
		n.cancel()
		_ = n.ps.Close()
		<-n.done
		_ = n.rdb.Close()
	})
	return nil
}

// receive delivers what arrives on the node's channels. go-redis
// reconnects and subscribes again after an error; each subscription
// confirmation is passed on as Subscribed.
func (n *Node) receive() {
	defer close(n.done)
	backoff := 50 * time.Millisecond
	for n.ctx.Err() == nil {
		v, err := n.ps.Receive(n.ctx)
		if err != nil {
			if n.ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return
			}
			select {
			case <-time.After(backoff):
			case <-n.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := v.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == n.keys.node(n.cfg.Instance) {
				n.events.Subscribed()
			}
		case *redis.Message:
			if rest, ok := strings.CutPrefix(m.Payload, doorbellPrefix); ok {
				n.events.Doorbell(n.parseDoorbell(rest))
				continue
			}
			if rest, ok := strings.CutPrefix(m.Payload, ackedPrefix); ok {
				session, entry, _ := strings.Cut(rest, " ")
				n.events.Acked(session, entry)
				continue
			}
			if c, err := n.decodeControl(m.Payload); err == nil {
				n.events.Control(c)
			}
		}
	}
}

// Ping reports whether Redis answers.
func (n *Node) Ping(ctx context.Context) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	return n.rdb.Ping(ctx).Err()
}

// bound gives a command the node's timeout unless ctx has a sooner one.
func (n *Node) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.cfg.Timeout)
}

// MaxmemoryPolicy is Redis's maxmemory-policy, as INFO memory reports it.
func (n *Node) MaxmemoryPolicy(ctx context.Context) (string, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	info, err := n.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok {
			return v, nil
		}
	}
	return "", errors.New("cluster: INFO memory has no maxmemory_policy")
}

// ErrEvicting is CheckEviction's error for a Redis that may evict keys.
var ErrEvicting = errors.New("cluster: Redis may evict keys")

// CheckEviction returns an error wrapping ErrEvicting unless Redis evicts
// nothing when full (maxmemory-policy noeviction): a Redis that evicts
// drops whichever session's keys its policy picks when one client fills
// it, ending other clients' sessions and losing their messages.
func (n *Node) CheckEviction(ctx context.Context) error {
	policy, err := n.MaxmemoryPolicy(ctx)
	if err != nil {
		return fmt.Errorf("cluster: reading Redis's maxmemory-policy (INFO memory): %w", err)
	}
	if policy != "noeviction" {
		return fmt.Errorf("%w: its maxmemory-policy is %s, and a full Redis would drop other clients' sessions; "+
			"set it to noeviction (CONFIG SET maxmemory-policy noeviction, or the service's setting), "+
			"or accept the risk with allow_eviction in the cluster option", ErrEvicting, policy)
	}
	return nil
}
