package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrFenced is returned to an owner whose session another instance has
// taken over since: it must let go of its copy and write nothing more.
var ErrFenced = errors.New("cluster: session taken over by another instance")

// ErrGone is returned when the cluster no longer knows the session.
var ErrGone = errors.New("cluster: session not found")

// ErrSpent is returned to a re-attach whose token is no longer the
// session's: another re-attach spent it first.
var ErrSpent = errors.New("cluster: the resume token was spent already")

// Meta is what the cluster knows of a session.
type Meta struct {
	ID    string
	Owner string
	// Epoch counts the session's owners: each takeover makes the next,
	// and an owner's writes carry the epoch it owns, so one that was cut
	// off writes nothing after a takeover.
	Epoch int64
	// LeaseLeft is how long the owner's claim holds unrenewed, as of the
	// lookup; <= 0 once it has run out.
	LeaseLeft time.Duration
	// TTL is how long the session outlives its owner (its resume window).
	TTL        time.Duration
	Identity   string
	Scope      string
	RemoteAddr string
	Hint       string // MCP-Protocol-Version of the opening GET
	UpstreamID string
	Protocol   string
	// Initialized: the upstream answered an initialize.
	Initialized bool
	// TokenHash is the resume token's Hash.
	TokenHash string
	// Detached: no stream holds the session; its owner waits for the
	// client to re-attach.
	Detached bool
	Opened   time.Time
	// Bridge is what the owner stated of it (see Owned).
	Bridge string
}

// Owned is what an owner states of a session it holds, each renewal.
type Owned struct {
	ID          string
	Epoch       int64
	TTL         time.Duration
	Identity    string
	Scope       string
	RemoteAddr  string
	Hint        string
	UpstreamID  string
	Protocol    string
	Initialized bool
	Token       string // the resume token itself; Redis gets its Hash
	Detached    bool
	Opened      time.Time
	// Bridge is the bridge's state of a session on the sessionless path
	// (opaque here), "" for others.
	Bridge string
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// fields are the metadata an owner writes at each renewal, as
// field/value pairs. The token hash is not among them: only a
// registration, a takeover and a re-attach (Retoken) write it.
func (o *Owned) fields(ring *Keyring) []any {
	return []any{
		"identity", o.Identity, "scope", o.Scope, "addr", o.RemoteAddr, "hint", o.Hint,
		"upstream", o.UpstreamID, "proto", o.Protocol, "init", flag(o.Initialized),
		"detached", flag(o.Detached), "opened", o.Opened.UnixMilli(),
		"bridge", sealBridge(ring, o),
	}
}

// sealBridge seals the bridge's state of a session (what its client said
// of itself, its subscriptions) as the inbox's entries are sealed.
func sealBridge(ring *Keyring, o *Owned) string {
	if o.Bridge == "" {
		return ""
	}
	return string(ring.seal([]byte(o.Bridge), bridgeContext(o.ID)))
}

// openBridge opens what sealBridge sealed; a value no key opens reads as
// no state (the new owner starts the bridge's state afresh) and is
// reported.
func (n *Node) openBridge(m *Meta) {
	if m.Bridge == "" {
		return
	}
	b, keyID, err := n.ring.Load().open([]byte(m.Bridge), bridgeContext(m.ID))
	if err != nil {
		n.unreadable("session state", keyID)
		m.Bridge = ""
		return
	}
	m.Bridge = string(b)
}

// Register writes a session this instance holds into the cluster, with
// its token and identity indexes.
func (n *Node) Register(ctx context.Context, o Owned) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	_, err := n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		n.register(ctx, p, &o)
		return nil
	})
	return err
}

func (n *Node) register(ctx context.Context, p redis.Pipeliner, o *Owned) {
	ttl := o.TTL + n.cfg.Lease
	args := append([]any{n.cfg.Instance, o.Epoch, ms(n.cfg.Lease), ms(o.TTL), "tok", Hash(o.Token)}, o.fields(n.ring.Load())...)
	registerScript.Eval(ctx, p, []string{n.keys.meta(o.ID), n.keys.inbox(o.ID)}, args...)
	p.Set(ctx, n.keys.token(Hash(o.Token)), o.ID, ttl)
	ik := n.keys.identity(o.Scope, o.Identity)
	p.SAdd(ctx, ik, o.ID)
	p.PExpire(ctx, ik, ttl)
}

// Refresh renews this instance's claim on the sessions it holds and
// records their state, in one round trip for all. It returns the ids of
// those taken over by another instance (fenced): their owner must let
// go. Sessions Redis lost (a restart without its data) are registered
// again, and so is the resume token's key of a session still held whose
// key is gone (a re-attach that could not write it, an eviction): the
// token's key lives as long as its session.
func (n *Node) Refresh(ctx context.Context, owned []Owned) (fenced []string, err error) {
	if len(owned) == 0 {
		return nil, nil
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	cmds := make([]*redis.Cmd, len(owned))
	tokens := make([]*redis.BoolCmd, len(owned))
	_, err = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range owned {
			o := &owned[i]
			ttl := o.TTL + n.cfg.Lease
			args := append([]any{n.cfg.Instance, o.Epoch, ms(n.cfg.Lease), Hash(o.Token)}, o.fields(n.ring.Load())...)
			cmds[i] = refreshScript.Eval(ctx, p, []string{n.keys.meta(o.ID), n.keys.inbox(o.ID)}, args...)
			tokens[i] = p.PExpire(ctx, n.keys.token(Hash(o.Token)), ttl)
			p.PExpire(ctx, n.keys.identity(o.Scope, o.Identity), ttl)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var lost, untokened []Owned
	for i, c := range cmds {
		switch v, _ := c.Int64(); v {
		case 0:
			fenced = append(fenced, owned[i].ID)
		case -1:
			lost = append(lost, owned[i])
		case 1:
			if renewed, err := tokens[i].Result(); err == nil && !renewed {
				untokened = append(untokened, owned[i])
			}
		}
	}
	if len(lost) > 0 || len(untokened) > 0 {
		_, err = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range lost {
				n.register(ctx, p, &lost[i])
			}
			for _, o := range untokened {
				p.Set(ctx, n.keys.token(Hash(o.Token)), o.ID, o.TTL+n.cfg.Lease)
			}
			return nil
		})
	}
	return fenced, err
}

// Lookup returns the session's metadata, or ErrGone.
func (n *Node) Lookup(ctx context.Context, id string) (Meta, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	v, err := lookupScript.Run(ctx, n.rdb, []string{n.keys.meta(id)}).Slice()
	if err != nil {
		return Meta{}, err
	}
	m, err := parseMeta(id, v)
	if err == nil {
		n.openBridge(&m)
	}
	return m, err
}

func parseMeta(id string, v []any) (Meta, error) {
	if len(v) != 2 {
		return Meta{}, fmt.Errorf("cluster: unexpected lookup reply %v", v)
	}
	now, _ := v[0].(int64)
	list, _ := v[1].([]any)
	if len(list) == 0 {
		return Meta{}, ErrGone
	}
	f := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		f[k] = val
	}
	num := func(k string) int64 {
		x, _ := strconv.ParseInt(f[k], 10, 64)
		return x
	}
	return Meta{
		ID: id, Owner: f["owner"], Epoch: num("epoch"),
		LeaseLeft: time.Duration(num("lease")-now) * time.Millisecond,
		TTL:       time.Duration(num("ttl")) * time.Millisecond,
		Identity:  f["identity"], Scope: f["scope"], RemoteAddr: f["addr"], Hint: f["hint"],
		UpstreamID: f["upstream"], Protocol: f["proto"], Initialized: f["init"] == "1",
		TokenHash: f["tok"], Detached: f["detached"] == "1", Opened: time.UnixMilli(num("opened")),
		Bridge: f["bridge"],
	}, nil
}

// ByToken returns the id of the session whose resume token is token.
func (n *Node) ByToken(ctx context.Context, token string) (string, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	id, err := n.rdb.Get(ctx, n.keys.token(Hash(token))).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrGone
	}
	return id, err
}

// ByIdentity returns the ids of the sessions one identity holds on one
// handler (some may have ended since).
func (n *Node) ByIdentity(ctx context.Context, scope, identity string) ([]string, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	return n.rdb.SMembers(ctx, n.keys.identity(scope, identity)).Result()
}

// Takeover makes this instance the owner of the session m describes, at
// the next epoch, provided nobody took it over since m was read; proof,
// if not "", is the token the client proved itself with, which must
// still be the session's. newToken becomes its token. It returns the new
// epoch, or ErrFenced when the session moved on meanwhile.
func (n *Node) Takeover(ctx context.Context, m Meta, proof, newToken string) (int64, error) {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	expect := ""
	if proof != "" {
		expect = Hash(proof)
	}
	e, err := takeoverScript.Run(ctx, n.rdb, []string{n.keys.meta(m.ID), n.keys.inbox(m.ID)},
		n.cfg.Instance, m.Epoch, expect, Hash(newToken), ms(n.cfg.Lease)).Int64()
	if err != nil {
		return 0, err
	}
	if e == 0 {
		return 0, ErrFenced
	}
	// The session is this instance's now, whatever becomes of the
	// tokens' keys: reporting a failure would make the caller drop a
	// session the cluster names it the owner of. The keys are an index
	// (the metadata's hash is what proves); a new one this could not
	// write, the next Refresh writes, and an old one left behind proves
	// nothing.
	ttl := m.TTL + n.cfg.Lease
	_, _ = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, n.keys.token(Hash(newToken)), m.ID, ttl)
		p.Del(ctx, n.keys.token(m.TokenHash))
		return nil
	})
	return e, nil
}

// Retoken spends the session's resume token old on a re-attach to its
// owner: o.Token becomes the session's, if this instance still owns it
// at o.Epoch (ErrFenced), the cluster still knows it (ErrGone) and old is
// still its token (ErrSpent). Until it returns nil the token is not
// spent, and the re-attach must not succeed: old would still take the
// session over on another instance. The tokens' keys (an index; the
// metadata's hash is what proves) follow; one this could not write, the
// next Refresh does.
func (n *Node) Retoken(ctx context.Context, o Owned, old string) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	v, err := retokenScript.Run(ctx, n.rdb, []string{n.keys.meta(o.ID), n.keys.inbox(o.ID)},
		n.cfg.Instance, o.Epoch, Hash(old), Hash(o.Token), ms(n.cfg.Lease)).Int64()
	if err != nil {
		return err
	}
	switch v {
	case 0:
		return ErrFenced
	case -1:
		return ErrGone
	case -2:
		return ErrSpent
	}
	_, _ = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, n.keys.token(Hash(o.Token)), o.ID, o.TTL+n.cfg.Lease)
		p.Del(ctx, n.keys.token(Hash(old)))
		return nil
	})
	return nil
}

// Remove deletes an ended session from the cluster, if this instance
// still owns it at epoch.
func (n *Node) Remove(ctx context.Context, o Owned) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	ok, err := removeScript.Run(ctx, n.rdb, []string{n.keys.meta(o.ID), n.keys.inbox(o.ID)}, n.cfg.Instance, o.Epoch).Int64()
	if err != nil {
		return err
	}
	if ok == 0 {
		return ErrFenced
	}
	_, err = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, n.keys.token(Hash(o.Token)))
		p.SRem(ctx, n.keys.identity(o.Scope, o.Identity), o.ID)
		return nil
	})
	return err
}

// List returns every session the cluster knows.
func (n *Node) List(ctx context.Context) ([]Meta, error) {
	var ids []string
	iter := n.rdb.Scan(ctx, 0, n.keys.metaPattern(), 512).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		// prefix:s:{id}
		start := len(n.keys.prefix) + len(":s:{")
		if len(k) > start+1 {
			ids = append(ids, k[start:len(k)-1])
		}
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	cmds := make([]*redis.Cmd, len(ids))
	_, err := n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = lookupScript.Eval(ctx, p, []string{n.keys.meta(id)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	list := make([]Meta, 0, len(ids))
	for i, c := range cmds {
		v, err := c.Slice()
		if err != nil {
			continue
		}
		if m, err := parseMeta(ids[i], v); err == nil {
			n.openBridge(&m)
			list = append(list, m)
		}
	}
	return list, nil
}

// RemoveStale deletes a session whose owner is gone, as read in m, unless
// it moved on since.
func (n *Node) RemoveStale(ctx context.Context, m Meta) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	ok, err := removeScript.Run(ctx, n.rdb, []string{n.keys.meta(m.ID), n.keys.inbox(m.ID)}, m.Owner, m.Epoch).Int64()
	if err != nil {
		return err
	}
	if ok == 0 {
		return ErrFenced
	}
	_, err = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, n.keys.token(m.TokenHash))
		p.SRem(ctx, n.keys.identity(m.Scope, m.Identity), m.ID)
		return nil
	})
	return err
}

// ForgetIdentity removes session id from the identity's index (a session
// whose metadata lapsed with its owner).
func (n *Node) ForgetIdentity(ctx context.Context, scope, identity, id string) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	return n.rdb.SRem(ctx, n.keys.identity(scope, identity), id).Err()
}
