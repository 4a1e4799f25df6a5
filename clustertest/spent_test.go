package clustertest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClusterReattachSpendsItsToken: a re-attach on the session's owner
// spends the resume token in the cluster, or fails. While Redis is down
// the owner cannot spend it, so the re-attach does not succeed (the old
// token would still take the session over elsewhere); once Redis is back
// the same token re-attaches, and from then on takes the session over
// nowhere.
func TestClusterReattachSpendsItsToken(t *testing.T) {
	c := startCluster(t, clusterOptions{})
	a, b := c.byName(t, "a"), c.byName(t, "b")
	s := openRaw(t, a.base(), nil)
	s.initialize(t, b.base())
	s.echo(t, b.base(), "before", "before")
	if o := c.ownerOf(t, b, s.ID); o != a {
		t.Fatalf("session %s is owned by %s, want a", s.ID, o.name)
	}
	spent := http.Header{}
	spent.Set("Last-Event-ID", s.lastEventID())
	s.close()
	waitState(t, c, b, s.ID, "detached")

	c.redis.Stop()
	s2, code, body := tryOpenRaw(t, a.base(), spent)
	if s2 != nil {
		s2.close()
		if s2.ID == s.ID {
			t.Fatalf("session %s re-attached on its owner while Redis was down: its token was not spent in the cluster", s.ID)
		}
		t.Fatalf("while Redis was down, a GET opened session %s; want 503", s2.ID)
	}
	if code != http.StatusServiceUnavailable {
		t.Errorf("re-attach while Redis is down: %d %s, want 503", code, body)
	}
	c.redis.Restart()

	// The token was not spent: it re-attaches once Redis is back.
	var s3 *rawSession
	eventually(t, 30*time.Second, "a re-attach on a once Redis is back", func() bool {
		got, _, _ := tryOpenRaw(t, a.base(), spent)
		if got != nil && got.ID != s.ID {
			got.close()
			t.Fatalf("once Redis was back, the token opened session %s, want %s", got.ID, s.ID)
		}
		s3 = got
		return got != nil
	})
	s3.echo(t, b.base(), "after", "after the re-attach")

	// Spent now: on no instance does it take the session over.
	for _, in := range []*instance{b, a} {
		got, code, body := tryOpenRaw(t, in.base(), spent)
		if got == nil {
			t.Errorf("the spent token on %s: %d %s, want a new session", in.name, code, body)
			continue
		}
		got.close()
		if got.ID == s.ID {
			t.Errorf("the spent token re-attached session %s on instance %s", s.ID, in.name)
		}
	}
	if o := c.ownerOf(t, b, s.ID); o != a {
		t.Errorf("after the spent token's tries, instance b names %s as the owner, want a", o.name)
	}
	s3.echo(t, b.base(), "last", "still streaming")
}

// TestClusterFencedAckLetsGo: an owner whose ack finds the session at a
// later epoch lets go of it at once, not at its next renewal (the lease
// here puts that minutes away). The owner's name is the same in Redis:
// as after a takeover by a process restarted under the same name, the
// epoch alone fences it.
func TestClusterFencedAckLetsGo(t *testing.T) {
	c := startCluster(t, clusterOptions{clusterExtra: "lease 300s"})
	a, b := c.byName(t, "a"), c.byName(t, "b")
	s := openRaw(t, a.base(), nil)
	s.initialize(t, b.base())
	if o := c.ownerOf(t, b, s.ID); o != a {
		t.Fatalf("session %s is owned by %s, want a", s.ID, o.name)
	}
	if got, err := c.redis.Do("HINCRBY", c.prefix+":s:{"+s.ID+"}", "epoch", "1"); err != nil || got != "2" {
		t.Fatalf("HINCRBY epoch: %q %v", got, err)
	}
	s.mustPost(t, b.base(), echoRequest("fenced", "after the epoch moved on"))
	s.waitEnd(t, 20*time.Second)
	if log := a.proc.Log(); !strings.Contains(log, "an ack found the session owned at a later epoch") {
		t.Errorf("instance a let go of the session, but not because of its ack; its log:\n%s", log)
	}
}
