package clustertest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// isAnswer matches the response to request id.
func isAnswer(id string) func(rpcMessage) bool {
	return func(m rpcMessage) bool { return m.Method == "" && m.id() == id }
}

// answers counts the responses to request id on s's stream.
func answers(s *rawSession, id string) int { return count(s, isAnswer(id)) }

// waitState waits until the cluster lists session id in state, through
// in's admin endpoint.
func waitState(t *testing.T, c *cluster, in *instance, id, state string) {
	t.Helper()
	eventually(t, 10*time.Second, "session "+id+" "+state, func() bool {
		for _, s := range c.sessions(t, in) {
			if s.ID == id {
				return s.State == state
			}
		}
		return false
	})
}

// TestClusterReattach: plain SSE clients re-attach on an instance other
// than the one that held their stream. By the resume cookie, after their
// stream was cut: a call posted while the session had no stream is
// answered once on the new stream, the new instance owns the session,
// and calls go on. By Last-Event-ID, after the owner was killed: a call
// posted meanwhile is refused (404) or, if accepted, answered once after
// the re-attach; frames the client had seen are not sent again.
func TestClusterReattach(t *testing.T) {
	c := startCluster(t, clusterOptions{})
	a, b, cc := c.byName(t, "a"), c.byName(t, "b"), c.byName(t, "c")

	t.Run("cookie after a cut", func(t *testing.T) {
		s := openRaw(t, a.base(), nil)
		s.initialize(t, c.base())
		s.echo(t, c.base(), "before", "before")
		cookie := s.cookie("mcp_sse_resume")
		if cookie == "" {
			t.Fatalf("the stream set no mcp_sse_resume cookie: %v", s.cookies)
		}
		s.close()
		waitState(t, c, b, s.ID, "detached")
		s.mustPost(t, c.base(), echoRequest("while-detached", "while detached"))

		h := http.Header{}
		h.Set("Cookie", "mcp_sse_resume="+cookie)
		s2 := openRaw(t, b.base(), h)
		if s2.ID != s.ID {
			t.Fatalf("re-attached by cookie on instance b to session %s, want the same %s", s2.ID, s.ID)
		}
		if m := s2.waitAnswer(t, 10*time.Second, "while-detached"); m.text() != "while detached" {
			t.Errorf("answer to the call posted while detached: %s %+v", m.Result, m.Error)
		}
		if o := c.ownerOf(t, cc, s.ID); o != b {
			t.Errorf("after the re-attach on b, instance c names %s as the owner", o.name)
		}
		waitState(t, c, a, s.ID, "streaming")
		s2.echo(t, c.base(), "after", "after the re-attach")
		time.Sleep(300 * time.Millisecond) // a duplicate would come now
		if n := answers(s2, "while-detached"); n != 1 {
			t.Errorf("the call posted while detached was answered %d times on the new stream", n)
		}
		if n := answers(s2, "before"); n != 0 {
			t.Errorf("the answer the client had read on its first stream came again %d time(s): frames %v (first stream: %v)",
				n, s2.framesOf(isAnswer("before")), s.framesOf(isAnswer("before")))
		}
	})

	t.Run("last-event-id after the owner is killed", func(t *testing.T) {
		s := openRaw(t, cc.base(), nil)
		s.initialize(t, c.base())
		s.echo(t, c.base(), "before", "before")
		seen := s.lastEventID()
		if seen == "" {
			t.Fatal("the stream's frames carry no id")
		}
		cc.proc.Kill9()
		// The owner is gone and nobody holds the stream: a POST is
		// refused or held for the takeover, never accepted and dropped.
		code, body, err := s.post(a.base(), echoRequest("while-ownerless", "while ownerless"))
		if err != nil || code != http.StatusAccepted && code != http.StatusNotFound {
			t.Fatalf("POST on instance a to the session of the killed instance: %d %s %v, want 202 or 404", code, body, err)
		}
		held := code == http.StatusAccepted
		t.Logf("a POST while the session had no owner: %d %s", code, body)

		h := http.Header{}
		h.Set("Last-Event-ID", seen)
		s2 := openRaw(t, c.base(), h)
		if s2.ID != s.ID {
			t.Fatalf("re-attached by Last-Event-ID through the balancer to session %s, want the same %s", s2.ID, s.ID)
		}
		oldToken, _, _ := strings.Cut(seen, ".")
		if newToken, _, _ := strings.Cut(s2.opening, "."); newToken == oldToken || len(newToken) < 22 {
			t.Errorf("the re-attached stream's opening frame id is %q, want a new token (the Last-Event-ID was %s)", s2.opening, seen)
		}
		t.Logf("re-attached with Last-Event-ID %s; the new stream opens with frame %s", seen, s2.opening)
		owner := c.ownerOf(t, a, s.ID)
		if owner == cc {
			t.Errorf("the killed instance still owns the session after the re-attach")
		}
		if held {
			if m := s2.waitAnswer(t, 15*time.Second, "while-ownerless"); m.text() != "while ownerless" {
				t.Errorf("answer to the call held for the takeover: %s %+v", m.Result, m.Error)
			}
		}
		s2.echo(t, c.base(), "after", "after the takeover")
		time.Sleep(300 * time.Millisecond)
		if n := answers(s2, "while-ownerless"); held && n != 1 {
			t.Errorf("the call held for the takeover was answered %d times", n)
		}
		for _, id := range []string{"init", "before"} {
			if n := answers(s2, id); n != 0 {
				t.Errorf("the answer to %s, read before the Last-Event-ID %s, came again on the new stream %d time(s): frames %v (first stream: %v)",
					id, seen, n, s2.framesOf(isAnswer(id)), s.framesOf(isAnswer(id)))
			}
		}
	})
}

// TestClusterFencing: the owner of a session is frozen (SIGSTOP: cut
// off, not dead; its connections stay open and its lease in Redis has not
// run out) while its client re-attaches on another instance by
// Last-Event-ID, the old stream still open. Once thawed, the old owner
// writes nothing more to the session: its old stream carries no further
// message and ends; a POST it receives, a push through its admin API, and
// calls through the others all reach the client once, on the new stream.
func TestClusterFencing(t *testing.T) {
	c := startCluster(t, clusterOptions{})
	a, b, cc := c.byName(t, "a"), c.byName(t, "b"), c.byName(t, "c")
	// Everything below goes to the instances directly: the balancer
	// would wait on the frozen one.
	s := openRaw(t, a.base(), nil)
	s.initialize(t, b.base())
	s.echo(t, cc.base(), "before", "before")
	seen := s.lastEventID()

	a.proc.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			a.proc.Thaw()
		}
	}()
	h := http.Header{}
	h.Set("Last-Event-ID", seen)
	s2 := openRaw(t, b.base(), h)
	if s2.ID != s.ID {
		t.Fatalf("re-attached by Last-Event-ID on instance b to session %s, want the same %s", s2.ID, s.ID)
	}
	s2.echo(t, cc.base(), "taken-over", "while the old owner is frozen")
	if o := c.ownerOf(t, cc, s.ID); o != b {
		t.Errorf("after the takeover, instance c names %s as the owner", o.name)
	}
	before := len(s.messages())

	a.proc.Thaw()
	thawed = true
	// The thawed owner's own POST path, and its admin API, reach the new
	// owner.
	s2.echo(t, a.base(), "via-old-owner", "posted on the old owner")
	push := "pushed through the old owner"
	if code, body, err := a.proc.AdminDo(http.MethodPost, "/mcp_sse/sessions/"+s.ID+"/messages", notification(push)); err != nil || code != http.StatusAccepted {
		t.Fatalf("push through the old owner's admin API: %d %s %v", code, body, err)
	}
	s2.waitMessage(t, 5*time.Second, "the push through the old owner", isNotification(push))
	s2.echo(t, cc.base(), "after", "after the thaw")
	if o := c.ownerOf(t, a, s.ID); o != b {
		t.Errorf("after the thaw, the old owner a names %s as the owner", o.name)
	}
	s.waitEnd(t, 15*time.Second)
	if got := s.messages()[before:]; len(got) > 0 {
		t.Errorf("the old owner wrote %d messages to its stream after the takeover: %+v", len(got), got)
	}
	time.Sleep(300 * time.Millisecond)
	for _, id := range []string{"taken-over", "via-old-owner", "after"} {
		if n := answers(s2, id); n != 1 {
			t.Errorf("%s answered %d times on the new stream", id, n)
		}
	}
	if n := count(s2, isNotification(push)); n != 1 {
		t.Errorf("the push arrived %d times on the new stream", n)
	}
}
