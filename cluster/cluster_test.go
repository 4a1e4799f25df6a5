package cluster_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/internal/redistest"
)

// events records what a node hands its instance.
type events struct {
	mu         sync.Mutex
	doorbells  []cluster.Doorbell
	controls   []cluster.Control
	subscribed int
	acked      []string // "session entry"
	changed    chan struct{}
}

func newEvents() *events { return &events{changed: make(chan struct{}, 64)} }

func (e *events) note(f func()) {
	e.mu.Lock()
	f()
	e.mu.Unlock()
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

func (e *events) Doorbell(d cluster.Doorbell) {
	e.note(func() { e.doorbells = append(e.doorbells, d) })
}
func (e *events) Control(c cluster.Control) { e.note(func() { e.controls = append(e.controls, c) }) }
func (e *events) Subscribed()               { e.note(func() { e.subscribed++ }) }
func (e *events) Acked(session, entry string) {
	e.note(func() { e.acked = append(e.acked, session+" "+entry) })
}

// waitFor waits (with a deadline) until cond holds.
func (e *events) waitFor(t *testing.T, what string, cond func(e *events) bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		e.mu.Lock()
		ok := cond(e)
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// testSecret is the tests' cluster secret (the base64 of 32 bytes).
const testSecret = "bWNwX3NzZSB0ZXN0cyBzZWNyZXQgMzIgYnl0ZXMgISE="

func testKeys(t *testing.T) *cluster.Keyring {
	t.Helper()
	kr, err := cluster.NewKeyring(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func open(t *testing.T, r *redistest.Server, instance string) (*cluster.Node, *events) {
	t.Helper()
	return openWith(t, r, cluster.Config{Instance: instance, Keys: testKeys(t)})
}

// openWith opens a node of cfg on r, with the tests' prefix and lease.
func openWith(t *testing.T, r *redistest.Server, cfg cluster.Config) (*cluster.Node, *events) {
	t.Helper()
	instance := cfg.Instance
	ev := newEvents()
	if cfg.URL == "" {
		cfg.URL = r.URL()
	}
	cfg.Prefix, cfg.Lease = "t", 3*time.Second
	n, err := cluster.Open(cfg, ev)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	ev.waitFor(t, instance+" subscribed", func(e *events) bool { return e.subscribed > 0 })
	return n, ev
}

func owned(id, token string) cluster.Owned {
	return cluster.Owned{
		ID: id, Epoch: 1, TTL: 10 * time.Second, Identity: "alice", Scope: "s1", RemoteAddr: "127.0.0.1:1",
		UpstreamID: "up-1", Protocol: "2025-06-18", Initialized: true, Token: token, Opened: time.Now(),
	}
}

func TestRegisterLookupAndIndexes(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	ctx := context.Background()
	if err := a.Register(ctx, owned("s-1", "tok-1")); err != nil {
		t.Fatal(err)
	}
	m, err := a.Lookup(ctx, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Owner != "a" || m.Epoch != 1 || m.Identity != "alice" || m.Scope != "s1" || m.UpstreamID != "up-1" ||
		m.Protocol != "2025-06-18" || !m.Initialized || m.Detached || m.TTL != 10*time.Second {
		t.Errorf("lookup = %+v", m)
	}
	if m.LeaseLeft <= 0 || m.LeaseLeft > 3*time.Second {
		t.Errorf("lease left %v, want within the 3s lease", m.LeaseLeft)
	}
	if m.TokenHash != cluster.Hash("tok-1") || strings.Contains(m.TokenHash, "tok-1") {
		t.Errorf("token hash %q: Redis must hold the token's hash, not the token", m.TokenHash)
	}
	if id, err := a.ByToken(ctx, "tok-1"); err != nil || id != "s-1" {
		t.Errorf("ByToken = %q, %v", id, err)
	}
	if _, err := a.ByToken(ctx, "tok-2"); !errors.Is(err, cluster.ErrGone) {
		t.Errorf("ByToken of an unknown token: %v, want ErrGone", err)
	}
	if ids, err := a.ByIdentity(ctx, "s1", "alice"); err != nil || len(ids) != 1 || ids[0] != "s-1" {
		t.Errorf("ByIdentity = %v, %v", ids, err)
	}
	if ids, _ := a.ByIdentity(ctx, "s2", "alice"); len(ids) != 0 {
		t.Errorf("ByIdentity on another scope = %v, want none", ids)
	}
	if _, err := a.Lookup(ctx, "s-2"); !errors.Is(err, cluster.ErrGone) {
		t.Errorf("Lookup of an unknown session: %v, want ErrGone", err)
	}

	// Nothing the cluster writes lives for ever, and a session's keys
	// share its hash tag (Redis Cluster runs a script on one slot).
	if _, err := a.Post(ctx, "s-1", "alice", "s1", &cluster.Posted{Body: []byte(`{}`)}, cluster.Load{}); err != nil {
		t.Fatal(err)
	}
	keys, err := r.Keys("t:*")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 { // meta, inbox, token, identity
		t.Errorf("keys %v, want 4", keys)
	}
	for _, k := range keys {
		ttl, err := r.Do("PTTL", k)
		if n, _ := strconv.Atoi(strings.TrimPrefix(ttl, ":")); err != nil || n <= 0 {
			t.Errorf("key %s has PTTL %q (%v): every key needs a TTL", k, ttl, err)
		}
		if strings.HasPrefix(k, "t:s:") && !strings.Contains(k, "{s-1}") {
			t.Errorf("session key %s is not hash-tagged by the session id", k)
		}
	}
	if err := a.Remove(ctx, owned("s-1", "tok-1")); err != nil {
		t.Fatal(err)
	}
	if keys, _ := r.Keys("t:*"); len(keys) != 0 {
		t.Errorf("after Remove, keys %v are left", keys)
	}
}

func TestPostChecksAndRings(t *testing.T) {
	r := redistest.Start(t)
	a, aev := open(t, r, "a")
	b, _ := open(t, r, "b")
	ctx := context.Background()
	if err := a.Register(ctx, owned("s-1", "tok-1")); err != nil {
		t.Fatal(err)
	}
	post := func(n *cluster.Node, identity, scope string, limit int, responses bool) (cluster.PostResult, error) {
		load := cluster.Load{Work: 1, MaxInflight: limit}
		if responses {
			load = cluster.Load{Responses: 1, MaxInflight: limit}
		}
		return n.Post(ctx, "s-1", identity, scope, &cluster.Posted{Body: []byte(`{"jsonrpc":"2.0"}`), At: time.Now().UnixNano()}, load)
	}
	if _, err := post(b, "mallory", "s1", 0, false); !errors.Is(err, cluster.ErrForbidden) {
		t.Errorf("another identity: %v, want ErrForbidden", err)
	}
	if _, err := post(b, "alice", "s2", 0, false); !errors.Is(err, cluster.ErrGone) {
		t.Errorf("another handler: %v, want ErrGone", err)
	}
	if _, err := b.Post(ctx, "nope", "alice", "s1", &cluster.Posted{}, cluster.Load{}); !errors.Is(err, cluster.ErrGone) {
		t.Errorf("unknown session: %v, want ErrGone", err)
	}
	res, err := post(b, "alice", "s1", 2, false)
	if err != nil || res.Owner != "a" || !res.Listening {
		t.Fatalf("post from b: %+v %v", res, err)
	}
	aev.waitFor(t, "a's doorbell", func(e *events) bool { return len(e.doorbells) == 1 && e.doorbells[0].Session == "s-1" })
	// The doorbell carries the entry and the one before it, so the owner
	// can dispatch it without reading the inbox.
	aev.mu.Lock()
	d := aev.doorbells[0]
	aev.mu.Unlock()
	if res.Entry == "" || res.Prev != "" || d.ID != res.Entry || d.Prev != "" || d.Posted == nil || string(d.Posted.Body) != `{"jsonrpc":"2.0"}` || d.Posted.From != "b" {
		t.Errorf("first post: result %+v, doorbell %+v", res, d)
	}
	// The owner posting rings nobody: it dispatches itself.
	first := res.Entry
	if res, err := post(a, "alice", "s1", 2, false); err != nil || res.Owner != "a" || res.Prev != first {
		t.Fatalf("post from a: %+v %v, want the first entry %s before it", res, err, first)
	}
	if _, err := post(b, "alice", "s1", 2, false); !errors.Is(err, cluster.ErrInboxFull) {
		t.Errorf("third post with limit 2: %v, want ErrInboxFull", err)
	}
	if _, err := post(b, "alice", "s1", 2, true); err != nil {
		t.Errorf("responses are counted apart: %v", err)
	}
	entries, err := a.Pending(ctx, "s-1", "", 10)
	if err != nil || len(entries) != 3 {
		t.Fatalf("pending: %d entries, %v; want 3", len(entries), err)
	}
	if entries[0].From != "b" || entries[1].From != "a" || string(entries[0].Body) != `{"jsonrpc":"2.0"}` {
		t.Errorf("entries %+v", entries)
	}
	if after, _ := a.Pending(ctx, "s-1", entries[0].ID, 10); len(after) != 2 || after[0].ID != entries[1].ID {
		t.Errorf("pending after the first: %+v", after)
	}
	// b's fourth post rang too: wait for it (its doorbell may still be on
	// its way), then check that a's own post added none.
	aev.waitFor(t, "a's second doorbell", func(e *events) bool { return len(e.doorbells) >= 2 })
	time.Sleep(100 * time.Millisecond)
	aev.mu.Lock()
	n := len(aev.doorbells)
	aev.mu.Unlock()
	if n != 2 {
		t.Errorf("a heard %d doorbells, want 2 (b's posts only)", n)
	}

	// Acked entries leave the inbox, which makes room.
	if err := a.Ack(ctx, "s-1", 1, cluster.Upstream{ID: "up-2", Protocol: "p", Initialized: true}, entries[0].ID, entries[1].ID); err != nil {
		t.Fatal(err)
	}
	if left, _ := a.Pending(ctx, "s-1", "", 10); len(left) != 1 {
		t.Errorf("after ack, %d entries left, want 1", len(left))
	}
	if m, _ := a.Lookup(ctx, "s-1"); m.UpstreamID != "up-2" {
		t.Errorf("ack did not record the upstream state: %+v", m)
	}

	// An owner that is gone has no listener: the post waits for a
	// takeover, and the poster knows.
	_ = a.Close()
	if res, err := post(b, "alice", "s1", 0, false); err != nil || res.Listening {
		t.Errorf("post to a gone owner: %+v %v, want accepted and not listening", res, err)
	}
	if alive, err := b.Listening(ctx, "a"); err != nil || alive {
		t.Errorf("Listening(a) after a closed = %v %v", alive, err)
	}
}

func TestTakeoverFencesTheOldOwner(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	b, _ := open(t, r, "b")
	ctx := context.Background()
	o := owned("s-1", "tok-1")
	if err := a.Register(ctx, o); err != nil {
		t.Fatal(err)
	}
	m, _ := b.Lookup(ctx, "s-1")
	if _, err := b.Takeover(ctx, m, "wrong-token", "tok-2"); !errors.Is(err, cluster.ErrFenced) {
		t.Errorf("takeover with a token that is not the session's: %v, want ErrFenced", err)
	}
	epoch, err := b.Takeover(ctx, m, "tok-1", "tok-2")
	if err != nil || epoch != 2 {
		t.Fatalf("takeover: epoch %d, %v", epoch, err)
	}
	if _, err := b.Takeover(ctx, m, "tok-1", "tok-3"); !errors.Is(err, cluster.ErrFenced) {
		t.Errorf("a second takeover from the same read: %v, want ErrFenced", err)
	}
	if id, err := b.ByToken(ctx, "tok-2"); err != nil || id != "s-1" {
		t.Errorf("the new token finds the session: %q %v", id, err)
	}
	if _, err := b.ByToken(ctx, "tok-1"); !errors.Is(err, cluster.ErrGone) {
		t.Errorf("the spent token still finds the session: %v", err)
	}
	// The old owner, cut off, comes back: every write is refused.
	if err := a.Ack(ctx, "s-1", 1, cluster.Upstream{}); !errors.Is(err, cluster.ErrFenced) {
		t.Errorf("old owner's ack: %v, want ErrFenced", err)
	}
	if fenced, err := a.Refresh(ctx, []cluster.Owned{o}); err != nil || len(fenced) != 1 {
		t.Errorf("old owner's refresh: fenced %v, %v", fenced, err)
	}
	if err := a.Remove(ctx, o); !errors.Is(err, cluster.ErrFenced) {
		t.Errorf("old owner's remove: %v, want ErrFenced", err)
	}
	if m, _ := b.Lookup(ctx, "s-1"); m.Owner != "b" || m.Epoch != 2 || m.Identity != "alice" || m.UpstreamID != "up-1" {
		t.Errorf("after the old owner's writes: %+v", m)
	}
	mine := o
	mine.Epoch, mine.Token = 2, "tok-2"
	if err := b.Ack(ctx, "s-1", 2, cluster.Upstream{ID: "up-1"}); err != nil {
		t.Errorf("new owner's ack: %v", err)
	}
	if fenced, err := b.Refresh(ctx, []cluster.Owned{mine}); err != nil || len(fenced) != 0 {
		t.Errorf("new owner's refresh: fenced %v, %v", fenced, err)
	}
}

func TestRefreshRegistersWhatRedisLost(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	ctx := context.Background()
	o := owned("s-1", "tok-1")
	if err := a.Register(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	if fenced, err := a.Refresh(ctx, []cluster.Owned{o}); err != nil || len(fenced) != 0 {
		t.Fatalf("refresh: %v %v", fenced, err)
	}
	if m, err := a.Lookup(ctx, "s-1"); err != nil || m.Owner != "a" || m.Identity != "alice" {
		t.Errorf("after a refresh, lookup = %+v %v", m, err)
	}
	if id, err := a.ByToken(ctx, "tok-1"); err != nil || id != "s-1" {
		t.Errorf("after a refresh, ByToken = %q %v", id, err)
	}
}

func TestResubscribesAfterRedisRestart(t *testing.T) {
	r := redistest.Start(t)
	a, aev := open(t, r, "a")
	b, _ := open(t, r, "b")
	ctx := context.Background()
	if err := a.Register(ctx, owned("s-1", "tok-1")); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if err := b.Ping(ctx); err == nil {
		t.Fatal("ping answered with Redis stopped")
	}
	start := time.Now()
	if _, err := b.Post(ctx, "s-1", "alice", "s1", &cluster.Posted{}, cluster.Load{}); err == nil {
		t.Error("post succeeded with Redis stopped")
	} else if d := time.Since(start); d > 3*time.Second {
		t.Errorf("post with Redis stopped took %v: it must fail fast", d)
	}
	r.Restart()
	aev.waitFor(t, "a subscribed again", func(e *events) bool { return e.subscribed >= 2 })
	if _, err := b.Post(ctx, "s-1", "alice", "s1", &cluster.Posted{}, cluster.Load{}); err != nil {
		t.Fatalf("post after the restart: %v (the data must survive it)", err)
	}
	aev.waitFor(t, "a's doorbell after the restart", func(e *events) bool { return len(e.doorbells) == 1 })
}

func TestControlMessages(t *testing.T) {
	r := redistest.Start(t)
	a, aev := open(t, r, "a")
	b, bev := open(t, r, "b")
	ctx := context.Background()
	if n, err := b.Send(ctx, "a", cluster.Control{Op: cluster.OpClose, ID: "s-1"}); err != nil || n != 1 {
		t.Fatalf("send: %d %v", n, err)
	}
	aev.waitFor(t, "a's control", func(e *events) bool {
		return len(e.controls) == 1 && e.controls[0].Op == cluster.OpClose && e.controls[0].From == "b"
	})
	if n, err := a.Broadcast(ctx, cluster.Control{Op: cluster.OpBroadcast, ID: "x"}); err != nil || n != 2 {
		t.Fatalf("broadcast reached %d, %v; want both instances", n, err)
	}
	bev.waitFor(t, "b's broadcast", func(e *events) bool { return len(e.controls) == 1 })
	if n, _ := a.Send(ctx, "gone", cluster.Control{Op: cluster.OpPush}); n != 0 {
		t.Errorf("send to an instance that is not there reached %d", n)
	}
}

func TestEntryBefore(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"1-0", "1-0", true}, {"1-0", "1-1", true}, {"1-2", "1-1", false},
		{"9-0", "10-0", true}, {"10-0", "9-5", false},
	} {
		if got := cluster.EntryBefore(c.a, c.b); got != c.want {
			t.Errorf("EntryBefore(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:6379/0", "rediss://user:pw@h:6380/1"} {
		if err := cluster.ParseURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://h:6379", "127.0.0.1:6379", "redis://h:6379/notadb"} {
		if err := cluster.ParseURL(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

func TestAckAll(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	b, _ := open(t, r, "b")
	ctx := context.Background()
	for _, id := range []string{"s-1", "s-2"} {
		if err := a.Register(ctx, owned(id, "tok-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	var entries []string
	for _, id := range []string{"s-1", "s-2"} {
		res, err := b.Post(ctx, id, "alice", "s1", &cluster.Posted{Body: []byte(`{}`)}, cluster.Load{})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, res.Entry)
	}
	m, _ := b.Lookup(ctx, "s-2")
	if _, err := b.Takeover(ctx, m, "tok-s-2", "tok-new"); err != nil {
		t.Fatal(err)
	}
	// Redis forgot its scripts (a restart does): AckAll sends them again.
	if _, err := r.Do("SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	errs := a.AckAll(ctx, []cluster.AckRequest{
		{Session: "s-1", Epoch: 1, Upstream: cluster.Upstream{ID: "up-9"}, Entries: []string{entries[0]}},
		{Session: "s-2", Epoch: 1, Entries: []string{entries[1]}},
	})
	if errs[0] != nil || !errors.Is(errs[1], cluster.ErrFenced) {
		t.Fatalf("AckAll errors %v, want nil and ErrFenced", errs)
	}
	if left, _ := a.Pending(ctx, "s-1", "", 10); len(left) != 0 {
		t.Errorf("s-1's acked entry is still there: %+v", left)
	}
	if left, _ := a.Pending(ctx, "s-2", "", 10); len(left) != 1 {
		t.Errorf("the fenced ack deleted s-2's entry: %d left", len(left))
	}
	if m, _ := a.Lookup(ctx, "s-1"); m.UpstreamID != "up-9" {
		t.Errorf("AckAll did not record the upstream state: %+v", m)
	}
}

func TestForgetIdentity(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	ctx := context.Background()
	for _, id := range []string{"s-1", "s-2"} {
		if err := a.Register(ctx, owned(id, "tok-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ForgetIdentity(ctx, "s1", "alice", "s-1"); err != nil {
		t.Fatal(err)
	}
	if ids, err := a.ByIdentity(ctx, "s1", "alice"); err != nil || len(ids) != 1 || ids[0] != "s-2" {
		t.Errorf("after forgetting s-1: %v %v", ids, err)
	}
}

// A takeover proved by the identity or the cookie (no token to check) is
// fenced by the epoch alone: a second one from the same read fails.
func TestTakeoverWithoutTokenFencedByEpoch(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	b, _ := open(t, r, "b")
	c, _ := open(t, r, "c")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Register(ctx, owned("s-1", "tok-1")); err != nil {
		t.Fatal(err)
	}
	m, err := b.Lookup(ctx, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if epoch, err := b.Takeover(ctx, m, "", "tok-b"); err != nil || epoch != 2 {
		t.Fatalf("b's takeover without a token: epoch %d, %v; want 2", epoch, err)
	}
	if epoch, err := c.Takeover(ctx, m, "", "tok-c"); !errors.Is(err, cluster.ErrFenced) {
		t.Errorf("c's takeover from the same stale read: epoch %d, %v; want ErrFenced", epoch, err)
	}
	if m, err := a.Lookup(ctx, "s-1"); err != nil || m.Owner != "b" || m.Epoch != 2 || m.TokenHash != cluster.Hash("tok-b") {
		t.Errorf("after the stale takeover: %+v %v, want owner b at epoch 2 with b's token", m, err)
	}
}

// The owner's renewal keeps the inbox as long as the metadata: a message
// waiting for the owner does not lapse before its session does.
func TestRefreshRenewsTheInbox(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := owned("s-1", "tok-1")
	if err := a.Register(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Post(ctx, "s-1", "alice", "s1", &cluster.Posted{Body: []byte(`{"jsonrpc":"2.0"}`), At: time.Now().UnixNano()}, cluster.Load{}); err != nil {
		t.Fatal(err)
	}
	// Shorten both, as time would: the renewal must lengthen both again.
	for _, key := range []string{"t:s:{s-1}", "t:s:{s-1}:in"} {
		if got, err := r.Do("PEXPIRE", key, "500"); err != nil || got != "1" {
			t.Fatalf("PEXPIRE %s: %q %v", key, got, err)
		}
	}
	if fenced, err := a.Refresh(ctx, []cluster.Owned{o}); err != nil || len(fenced) != 0 {
		t.Fatalf("refresh: fenced %v, %v", fenced, err)
	}
	for _, key := range []string{"t:s:{s-1}", "t:s:{s-1}:in"} {
		got, err := r.Do("PTTL", key)
		ms, _ := strconv.Atoi(got)
		if err != nil || ms < 10000 {
			t.Errorf("after the refresh, PTTL %s = %q %v; want the ttl plus the lease (13s)", key, got, err)
		}
	}
}

// TestCheckEviction: a Redis that evicts nothing passes; one with an
// evicting maxmemory-policy is named, policy and way out, in the error.
func TestCheckEviction(t *testing.T) {
	r := redistest.Start(t)
	n, _ := open(t, r, "evict")
	if err := n.CheckEviction(t.Context()); err != nil {
		t.Fatalf("noeviction: %v", err)
	}
	for _, policy := range []string{"allkeys-lru", "volatile-ttl", "allkeys-random"} {
		if _, err := r.Do("CONFIG", "SET", "maxmemory-policy", policy); err != nil {
			t.Fatal(err)
		}
		err := n.CheckEviction(t.Context())
		if !errors.Is(err, cluster.ErrEvicting) || !strings.Contains(err.Error(), policy) ||
			!strings.Contains(err.Error(), "noeviction") || !strings.Contains(err.Error(), "allow_eviction") {
			t.Errorf("%s: %v, want ErrEvicting naming the policy, noeviction and allow_eviction", policy, err)
		}
	}
}

// TestInboxBounds: an inbox holds at most MaxInflight requests and
// notifications and, apart, as many responses, counted in messages (not
// entries), and at most MaxBytes of bodies; each entry holds its share
// until it is acked, which gives it back and tells its poster.
func TestInboxBounds(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	b, bev := open(t, r, "b")
	ctx := context.Background()
	if err := a.Register(ctx, owned("s-1", "tok-1")); err != nil {
		t.Fatal(err)
	}
	post := func(work, responses int, bytes int64) (string, error) {
		res, err := b.Post(ctx, "s-1", "alice", "s1", &cluster.Posted{Body: []byte(`[]`)},
			cluster.Load{Work: work, Responses: responses, Bytes: bytes, MaxInflight: 3, MaxBytes: 1000})
		return res.Entry, err
	}
	first, err := post(2, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := post(2, 0, 100); !errors.Is(err, cluster.ErrInboxFull) {
		t.Errorf("2 more requests on 2 of 3: %v, want ErrInboxFull", err)
	}
	if _, err := post(1, 0, 100); err != nil {
		t.Errorf("1 more request on 2 of 3: %v", err)
	}
	if _, err := post(0, 3, 100); err != nil {
		t.Errorf("3 responses, counted apart: %v", err)
	}
	if _, err := post(0, 1, 100); !errors.Is(err, cluster.ErrInboxFull) {
		t.Errorf("a 4th response: %v, want ErrInboxFull", err)
	}
	// The first entry done: its 2 requests and 100 bytes are given back,
	// and b, its poster, is told.
	if err := a.Ack(ctx, "s-1", 1, cluster.Upstream{}, first); err != nil {
		t.Fatal(err)
	}
	bev.waitFor(t, "b told of the ack", func(e *events) bool { return len(e.acked) == 1 && e.acked[0] == "s-1 "+first })
	if _, err := post(2, 0, 600); err != nil {
		t.Errorf("2 requests after the ack: %v", err)
	}
	// 100 + 100 + 600 bytes held: 300 more exceed 1000.
	if _, err := post(0, 0, 300); !errors.Is(err, cluster.ErrInboxBytes) {
		t.Errorf("300 bytes on 800 of 1000: %v, want ErrInboxBytes", err)
	}
	// Acking again gives back nothing more.
	if err := a.Ack(ctx, "s-1", 1, cluster.Upstream{}, first); err != nil {
		t.Fatal(err)
	}
	if _, err := post(1, 0, 0); !errors.Is(err, cluster.ErrInboxFull) {
		t.Errorf("a request on 3 of 3 after a second ack of the same entry: %v, want ErrInboxFull", err)
	}
	got, err := b.Existing(ctx, []cluster.EntryRef{{"s-1", first}, {"s-2", "1-1"}})
	if err != nil || got[0] || got[1] {
		t.Errorf("Existing of an acked entry and one of an unknown session: %v %v, want false false", got, err)
	}
	entries, _ := a.Pending(ctx, "s-1", "", 10)
	refs := make([]cluster.EntryRef, len(entries))
	for i, e := range entries {
		refs[i] = cluster.EntryRef{Session: "s-1", Entry: e.ID}
	}
	if got, err := b.Existing(ctx, refs); err != nil || len(got) != 3 || !got[0] || !got[1] || !got[2] {
		t.Errorf("Existing of the 3 entries left: %v %v", got, err)
	}
	// An empty inbox takes one POST larger than the bound.
	if err := a.Register(ctx, owned("s-2", "tok-2")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Post(ctx, "s-2", "alice", "s1", &cluster.Posted{Body: []byte(`[]`)}, cluster.Load{Work: 1, Bytes: 5000, MaxBytes: 1000}); err != nil {
		t.Errorf("one large POST on an empty inbox: %v", err)
	}
}
