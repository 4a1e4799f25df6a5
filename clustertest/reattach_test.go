package clustertest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// isClosed reports whether ch is closed.
func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

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

	t.Run("last-event-id after the owner is killed under traffic", func(t *testing.T) {
		// Four sessions on c, echo calls running on each through a and b
		// when c is killed: at that instant some answers have been flushed
		// to their clients and not yet acknowledged in Redis, others not
		// yet written, and POSTs keep coming.
		var sessions []*rawSession
		for range 4 {
			s := openRaw(t, cc.base(), nil)
			s.initialize(t, a.base())
			sessions = append(sessions, s)
		}
		var mu sync.Mutex
		accepted := map[string]int{} // call id → session
		refused := map[string]int{}
		killed := make(chan struct{})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i, s := range sessions {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					id := fmt.Sprintf("t-%d-%d", i, n)
					via := []*instance{a, b}[n%2]
					code, body, err := s.post(via.base(), echoRequest(id, id))
					mu.Lock()
					switch {
					case err == nil && code == http.StatusAccepted:
						accepted[id] = i
					case err == nil && code == http.StatusNotFound && isClosed(killed):
						refused[id] = i // the owner is gone: refused, not dropped
					default:
						t.Errorf("session %d: POST %s through %s: %d %s %v", i, id, via.name, code, body, err)
					}
					mu.Unlock()
				}
			})
		}
		defer func() {
			select {
			case <-stop:
			default:
				close(stop)
				wg.Wait()
			}
		}()
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		// A last call on each session at once, and the kill as soon as
		// their answers are read: flushed, and maybe not yet acknowledged.
		for i, s := range sessions {
			id := fmt.Sprintf("last-%d", i)
			wg.Go(func() {
				code, body, err := s.post(b.base(), echoRequest(id, id))
				mu.Lock()
				defer mu.Unlock()
				if err != nil || code != http.StatusAccepted {
					t.Errorf("session %d: POST %s: %d %s %v", i, id, code, body, err)
					return
				}
				accepted[id] = i
			})
		}
		wg.Wait()
		for i, s := range sessions {
			s.waitAnswer(t, 10*time.Second, fmt.Sprintf("last-%d", i))
		}
		cc.proc.Kill9()
		close(killed)
		for _, s := range sessions {
			s.waitEnd(t, 10*time.Second)
		}
		// A POST while the session has no owner is held for the takeover
		// (202) or refused (404), never accepted and dropped.
		for i, s := range sessions {
			id := fmt.Sprintf("ownerless-%d", i)
			code, body, err := s.post(a.base(), echoRequest(id, id))
			switch {
			case err == nil && code == http.StatusAccepted:
				accepted[id] = i
			case err == nil && code == http.StatusNotFound:
				refused[id] = i
			default:
				t.Errorf("session %d: POST %s with the owner gone: %d %s %v, want 202 or 404", i, id, code, body, err)
			}
		}

		var again []*rawSession
		for i, s := range sessions {
			seen := s.lastEventID()
			h := http.Header{}
			h.Set("Last-Event-ID", seen)
			s2 := openRaw(t, c.base(), h)
			if s2.ID != s.ID {
				t.Fatalf("session %d re-attached by Last-Event-ID through the balancer to session %s, want the same %s", i, s2.ID, s.ID)
			}
			oldToken, _, _ := strings.Cut(seen, ".")
			if newToken, _, _ := strings.Cut(s2.opening, "."); newToken == oldToken || len(newToken) < 22 {
				t.Errorf("session %d: the re-attached stream's opening frame id is %q, want a new token (the Last-Event-ID was %s)", i, s2.opening, seen)
			}
			if o := c.ownerOf(t, a, s.ID); o == cc {
				t.Errorf("session %d: the killed instance still owns it after the re-attach", i)
			}
			again = append(again, s2)
		}

		// Every call accepted is answered exactly once across the two
		// streams; none refused is answered.
		mu.Lock()
		defer mu.Unlock()
		answeredOn := func(s *rawSession, id string) int { return answers(s, id) }
		deadline := time.Now().Add(15 * time.Second)
		for id, i := range accepted {
			for answeredOn(sessions[i], id)+answeredOn(again[i], id) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
		}
		time.Sleep(500 * time.Millisecond) // late repeats would come now
		var lost, twice, onBoth int
		for id, i := range accepted {
			before, after := answeredOn(sessions[i], id), answeredOn(again[i], id)
			switch {
			case before+after == 0:
				lost++
				t.Errorf("session %d: %s got 202 and no answer", i, id)
			case before == 1 && after == 1:
				// The documented at-least-once window (README, "What it
				// guarantees"): the killed owner flushed the answer and
				// died before deleting its inbox entry, so the new owner
				// ran the request again.
				onBoth++
				t.Logf("session %d: %s answered before the kill (frames %v) and again after the re-attach by Last-Event-ID %s (frames %v)",
					i, id, sessions[i].framesOf(isAnswer(id)), sessions[i].lastEventID(), again[i].framesOf(isAnswer(id)))
			case before+after > 1:
				twice++
				t.Errorf("session %d: %s answered %d times", i, id, before+after)
			}
		}
		for id, i := range refused {
			if n := answeredOn(sessions[i], id) + answeredOn(again[i], id); n != 0 {
				t.Errorf("session %d: %s was refused (404) but answered %d time(s)", i, id, n)
			}
		}
		for i := range sessions {
			if n := answeredOn(again[i], "init"); n != 0 {
				t.Errorf("session %d: the initialize answer, before the Last-Event-ID, came again", i)
			}
		}
		t.Logf("%d calls accepted, %d refused with the owner gone; %d lost, %d answered on both streams, %d answered twice on one",
			len(accepted), len(refused), lost, onBoth, twice)
		for i, s2 := range again {
			s2.echo(t, c.base(), fmt.Sprintf("after-%d", i), "after the takeover")
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

// TestClusterOwnerKeepsItsSession: what must not move a session or lose
// its messages. A cookie presented on another instance while the
// session's stream is live opens a new session; a notice of release at an
// epoch not newer than the owner's is ignored; a message posted while the
// owner's subscription is down is dispatched once it is back; and after a
// takeover, a call the old owner had started and the call posted next are
// each answered once.
func TestClusterOwnerKeepsItsSession(t *testing.T) {
	c := startCluster(t, clusterOptions{})
	a, b, cc := c.byName(t, "a"), c.byName(t, "b"), c.byName(t, "c")

	t.Run("cookie while the stream lives", func(t *testing.T) {
		s := openRaw(t, a.base(), nil)
		defer s.close()
		s.initialize(t, b.base())
		cookie := s.cookie("mcp_sse_resume")
		if cookie == "" {
			t.Fatalf("the stream set no mcp_sse_resume cookie: %v", s.cookies)
		}
		h := http.Header{}
		h.Set("Cookie", "mcp_sse_resume="+cookie)
		s2 := openRaw(t, b.base(), h)
		defer s2.close()
		if s2.ID == s.ID {
			t.Fatalf("a cookie on instance b took over session %s, whose stream on a is live", s.ID)
		}
		if o := c.ownerOf(t, cc, s.ID); o != a {
			t.Errorf("after the cookie on b, instance c names %s as the owner, want a", o.name)
		}
		s.echo(t, cc.base(), "still-a", "still on a")
		if s.hasEnded() {
			t.Error("the live stream ended")
		}
	})

	t.Run("stale release notice", func(t *testing.T) {
		s := openRaw(t, a.base(), nil)
		defer s.close()
		s.initialize(t, b.base())
		// As b would send after a takeover at epoch 1, which is a's own:
		// no takeover happened after a's.
		notice := fmt.Sprintf(`{"op":"released","id":%q,"epoch":1,"from":"b"}`, s.ID)
		if n, err := c.redis.Do("PUBLISH", c.prefix+":n:a", notice); err != nil || n != "1" {
			t.Fatalf("PUBLISH the notice to a: %q %v, want 1 listener", n, err)
		}
		time.Sleep(300 * time.Millisecond)
		s.echo(t, cc.base(), "after-notice", "after a stale notice")
		if s.hasEnded() {
			t.Error("a stale release notice ended the stream")
		}
		if o := c.ownerOf(t, cc, s.ID); o != a {
			t.Errorf("instance c names %s as the owner, want a", o.name)
		}
	})

	t.Run("posted while the owner resubscribes", func(t *testing.T) {
		s := openRaw(t, a.base(), nil)
		defer s.close()
		s.initialize(t, b.base())
		// Cut every subscription; an instance subscribes again after a
		// 50 ms pause. The doorbell of a POST in that window rings no one.
		posted := false
		for try := 0; try < 10 && !posted; try++ {
			if _, err := c.redis.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
				t.Fatal(err)
			}
			if n, err := c.redis.Do("PUBSUB", "NUMSUB", c.prefix+":n:a"); err == nil && strings.HasSuffix(n, "\n0") {
				s.mustPost(t, b.base(), echoRequest("unrung", "posted unrung"))
				posted = true
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !posted {
			t.Fatal("a subscribed again before every POST: the window was not hit")
		}
		if m := s.waitAnswer(t, 10*time.Second, "unrung"); m.text() != "posted unrung" {
			t.Errorf("answer: %s %+v", m.Result, m.Error)
		}
	})

	t.Run("retaken call and the next", func(t *testing.T) {
		s := openRaw(t, a.base(), nil)
		s.initialize(t, b.base())
		cookie := s.cookie("mcp_sse_resume")
		s.close()
		waitState(t, c, b, s.ID, "detached")
		// a dispatches the slow call, whose answer waits for a stream.
		s.mustPost(t, cc.base(), `{"jsonrpc":"2.0","id":"retaken","method":"tools/call","params":{"name":"slow","arguments":{"steps":4,"delay_ms":500}}}`)
		time.Sleep(300 * time.Millisecond)
		h := http.Header{}
		h.Set("Cookie", "mcp_sse_resume="+cookie)
		s2 := openRaw(t, b.base(), h)
		defer s2.close()
		if s2.ID != s.ID {
			t.Fatalf("re-attached by cookie on instance b to session %s, want the same %s", s2.ID, s.ID)
		}
		// Posted while the slow call's entry is still in the inbox.
		s2.mustPost(t, cc.base(), echoRequest("next", "after the retake"))
		if m := s2.waitAnswer(t, 10*time.Second, "next"); m.text() != "after the retake" {
			t.Errorf("answer to next: %s %+v", m.Result, m.Error)
		}
		if m := s2.waitAnswer(t, 10*time.Second, "retaken"); m.Error != nil {
			t.Errorf("the retaken slow call failed: %+v", m.Error)
		}
		time.Sleep(time.Second) // a duplicate would come now
		for _, id := range []string{"retaken", "next"} {
			if n := answers(s2, id); n != 1 {
				t.Errorf("%s answered %d times: %v", id, n, s2.framesOf(isAnswer(id)))
			}
		}
	})
}
