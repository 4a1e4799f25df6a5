package cluster_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/internal/redistest"
)

// oldEpochFenced checks that every write of stale, an owner's state at
// an epoch the session has left, is refused, and leaves the session as
// want says.
func oldEpochFenced(t *testing.T, ctx context.Context, n *cluster.Node, stale cluster.Owned, want func(m cluster.Meta) bool) {
	t.Helper()
	if err := n.Ack(ctx, stale.ID, stale.Epoch, cluster.Upstream{ID: "stale-up"}); !errors.Is(err, cluster.ErrFenced) {
		t.Errorf("ack at old epoch %d: %v, want ErrFenced", stale.Epoch, err)
	}
	if errs := n.AckAll(ctx, []cluster.AckRequest{{Session: stale.ID, Epoch: stale.Epoch}}); !errors.Is(errs[0], cluster.ErrFenced) {
		t.Errorf("AckAll at old epoch %d: %v, want ErrFenced", stale.Epoch, errs[0])
	}
	stale.UpstreamID = "stale-up"
	if fenced, err := n.Refresh(ctx, []cluster.Owned{stale}); err != nil || len(fenced) != 1 {
		t.Errorf("refresh at old epoch %d: fenced %v, %v; want the session fenced", stale.Epoch, fenced, err)
	}
	next := stale
	next.Token = "tok-stale"
	if err := n.Retoken(ctx, next, stale.Token); !errors.Is(err, cluster.ErrFenced) {
		t.Errorf("retoken at old epoch %d: %v, want ErrFenced", stale.Epoch, err)
	}
	if err := n.Remove(ctx, stale); !errors.Is(err, cluster.ErrFenced) {
		t.Errorf("remove at old epoch %d: %v, want ErrFenced", stale.Epoch, err)
	}
	if m, err := n.Lookup(ctx, stale.ID); err != nil || !want(m) || m.UpstreamID == "stale-up" {
		t.Errorf("after the old epoch's writes: %+v %v", m, err)
	}
}

// Fencing is by epoch, not by name: a session that went a → b → a
// refuses what a wrote at its first epoch.
func TestFencedByEpochAfterComingBack(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	b, _ := open(t, r, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first := owned("s-1", "tok-1")
	if err := a.Register(ctx, first); err != nil {
		t.Fatal(err)
	}
	m, _ := b.Lookup(ctx, "s-1")
	if e, err := b.Takeover(ctx, m, "tok-1", "tok-2"); err != nil || e != 2 {
		t.Fatalf("b's takeover: %d %v", e, err)
	}
	m, _ = a.Lookup(ctx, "s-1")
	if e, err := a.Takeover(ctx, m, "tok-2", "tok-3"); err != nil || e != 3 {
		t.Fatalf("a's takeover back: %d %v", e, err)
	}
	oldEpochFenced(t, ctx, a, first, func(m cluster.Meta) bool {
		return m.Owner == "a" && m.Epoch == 3 && m.TokenHash == cluster.Hash("tok-3")
	})
	// a at its current epoch writes.
	now := first
	now.Epoch, now.Token = 3, "tok-3"
	if err := a.Ack(ctx, "s-1", 3, cluster.Upstream{ID: "up-1"}); err != nil {
		t.Errorf("ack at the current epoch: %v", err)
	}
	if fenced, err := a.Refresh(ctx, []cluster.Owned{now}); err != nil || len(fenced) != 0 {
		t.Errorf("refresh at the current epoch: %v %v", fenced, err)
	}
	if err := a.Remove(ctx, now); err != nil {
		t.Errorf("remove at the current epoch: %v", err)
	}
}

// An instance restarted under the same name while its old process still
// runs: the new process's takeover fences the old one's writes.
func TestFencedByEpochAfterRestartUnderTheSameName(t *testing.T) {
	r := redistest.Start(t)
	old, _ := open(t, r, "a")
	restarted, _ := open(t, r, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := owned("s-1", "tok-1")
	if err := old.Register(ctx, o); err != nil {
		t.Fatal(err)
	}
	m, _ := restarted.Lookup(ctx, "s-1")
	if e, err := restarted.Takeover(ctx, m, "tok-1", "tok-2"); err != nil || e != 2 {
		t.Fatalf("the restarted process's takeover: %d %v", e, err)
	}
	oldEpochFenced(t, ctx, old, o, func(m cluster.Meta) bool {
		return m.Owner == "a" && m.Epoch == 2 && m.TokenHash == cluster.Hash("tok-2")
	})
}

// A resume token is spent once: a re-attach's Retoken replaces it, a
// second from the same token is refused, and neither the spent token nor
// a renewal that read the session before the re-attach brings it back.
func TestRetokenSpendsTheToken(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	b, _ := open(t, r, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := owned("s-1", "tok-1")
	if err := a.Register(ctx, before); err != nil {
		t.Fatal(err)
	}
	after := before
	after.Token = "tok-2"
	if err := a.Retoken(ctx, after, "tok-1"); err != nil {
		t.Fatalf("retoken: %v", err)
	}
	again := before
	again.Token = "tok-3"
	if err := a.Retoken(ctx, again, "tok-1"); !errors.Is(err, cluster.ErrSpent) {
		t.Errorf("a second re-attach with the spent token: %v, want ErrSpent", err)
	}
	// A renewal with the state read before the re-attach.
	if fenced, err := a.Refresh(ctx, []cluster.Owned{before}); err != nil || len(fenced) != 0 {
		t.Errorf("refresh: %v %v", fenced, err)
	}
	if _, err := b.ByToken(ctx, "tok-1"); !errors.Is(err, cluster.ErrGone) {
		t.Errorf("the spent token still finds the session: %v", err)
	}
	m, err := b.Lookup(ctx, "s-1")
	if err != nil || m.TokenHash != cluster.Hash("tok-2") {
		t.Fatalf("after the re-attach and a stale renewal, the session's token hash is %q (%v), want tok-2's", m.TokenHash, err)
	}
	if _, err := b.Takeover(ctx, m, "tok-1", "tok-b"); !errors.Is(err, cluster.ErrFenced) {
		t.Errorf("a takeover elsewhere with the spent token: %v, want ErrFenced", err)
	}
	if id, err := b.ByToken(ctx, "tok-2"); err != nil || id != "s-1" {
		t.Errorf("the new token: %q %v", id, err)
	}
	gone := owned("s-404", "tok-x")
	gone.Token = "tok-y"
	if err := a.Retoken(ctx, gone, "tok-x"); !errors.Is(err, cluster.ErrGone) {
		t.Errorf("retoken of a session the cluster lost: %v, want ErrGone", err)
	}
}

// The resume token's key lives as long as its session: each renewal
// renews it, and writes it again if it is gone, so that a long session
// can still re-attach on another instance.
func TestRefreshRenewsTheTokenKey(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := owned("s-1", "tok-1")
	if err := a.Register(ctx, o); err != nil {
		t.Fatal(err)
	}
	key := "t:t:{" + cluster.Hash("tok-1") + "}"
	for _, lapse := range [][]string{{"PEXPIRE", key, "500"}, {"DEL", key}} {
		if got, err := r.Do(lapse...); err != nil || got != "1" {
			t.Fatalf("%v: %q %v", lapse, got, err)
		}
		if fenced, err := a.Refresh(ctx, []cluster.Owned{o}); err != nil || len(fenced) != 0 {
			t.Fatalf("refresh: %v %v", fenced, err)
		}
		got, err := r.Do("PTTL", key)
		if ms, _ := strconv.Atoi(got); err != nil || ms < 10000 {
			t.Errorf("after %v and a refresh, PTTL of the token's key = %q %v; want the ttl plus the lease (13s)", lapse, got, err)
		}
		if id, err := a.ByToken(ctx, "tok-1"); err != nil || id != "s-1" {
			t.Errorf("after %v and a refresh, ByToken = %q %v", lapse, id, err)
		}
	}
}

// A takeover is done once its script has run: the session is the
// taker's at the new epoch whatever becomes of the tokens' keys (an
// index) after it. Were it reported failed, its instance would drop its
// copy while the cluster names it the owner, and nobody would hold the
// session. Here the taker's Redis user may not SET, so the new token's
// key cannot be written; the next renewal of an instance that may
// writes it.
func TestTakeoverDoneWhenOnlyTheIndexFails(t *testing.T) {
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	if _, err := r.Do("ACL", "SETUSER", "noset", "on", ">pw", "~*", "&*", "+@all", "-set"); err != nil {
		t.Fatal(err)
	}
	b, _ := openWith(t, r, cluster.Config{URL: "redis://noset:pw@" + r.Addr() + "/0", Instance: "b", Keys: testKeys(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := owned("s-1", "tok-1")
	if err := a.Register(ctx, o); err != nil {
		t.Fatal(err)
	}
	m, err := b.Lookup(ctx, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := b.Takeover(ctx, m, "tok-1", "tok-2"); err != nil || e != 2 {
		t.Fatalf("takeover whose token key could not be written: epoch %d, %v; want 2, nil", e, err)
	}
	if m, err := a.Lookup(ctx, "s-1"); err != nil || m.Owner != "b" || m.Epoch != 2 || m.TokenHash != cluster.Hash("tok-2") {
		t.Fatalf("after the takeover: %+v %v", m, err)
	}
	// b's renewal, through a connection that may write, restores the
	// token's key.
	b2, _ := openWith(t, r, cluster.Config{Instance: "b", Keys: testKeys(t)})
	mine := o
	mine.Epoch, mine.Token = 2, "tok-2"
	if fenced, err := b2.Refresh(ctx, []cluster.Owned{mine}); err != nil || len(fenced) != 0 {
		t.Fatalf("refresh: %v %v", fenced, err)
	}
	if id, err := a.ByToken(ctx, "tok-2"); err != nil || id != "s-1" {
		t.Errorf("after the renewal, the new token finds %q %v", id, err)
	}
}
