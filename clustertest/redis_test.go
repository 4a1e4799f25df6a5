package clustertest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hangLimit is how long any request may take while Redis is down: the
// instances have dial_timeout and timeout 1s.
const hangLimit = 5 * time.Second

// postResult is one POST of the background traffic.
type postResult struct {
	session int
	id      string
	code    int
	err     error
	took    time.Duration
	at      time.Time
}

// traffic is a stream of echo calls, one POST every interval on each
// session, through the balancer, until stopped.
type traffic struct {
	mu      sync.Mutex
	results []postResult
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startTraffic(base string, sessions []*rawSession, interval time.Duration) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	for i, s := range sessions {
		tr.wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-tr.stop:
					return
				case <-tick.C:
				}
				id := fmt.Sprintf("bg-%d-%d", i, n)
				at := time.Now()
				code, _, err := s.post(base, echoRequest(id, id))
				tr.mu.Lock()
				tr.results = append(tr.results, postResult{i, id, code, err, time.Since(at), at})
				tr.mu.Unlock()
			}
		})
	}
	return tr
}

func (tr *traffic) halt() {
	close(tr.stop)
	tr.wg.Wait()
}

func (tr *traffic) snapshot() []postResult {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]postResult(nil), tr.results...)
}

// redisFootprint is what the instances hold of Redis: the connections
// each has open to it, and Redis's own count of its clients.
type redisFootprint struct {
	conns   map[string]int
	clients int
}

func (c *cluster) redisFootprint(t *testing.T) redisFootprint {
	t.Helper()
	f := redisFootprint{conns: map[string]int{}}
	for _, in := range c.inst {
		n, err := in.proc.ConnsTo(c.redis.Addr())
		if err != nil {
			t.Fatalf("instance %s: connections to redis: %v", in.name, err)
		}
		f.conns[in.name] = n
	}
	clients, err := c.redis.Clients()
	if err != nil {
		t.Fatalf("redis CLIENT LIST: %v", err)
	}
	f.clients = len(clients)
	return f
}

func (c *cluster) goroutines(t *testing.T) map[string]int {
	t.Helper()
	g := map[string]int{}
	for _, in := range c.inst {
		n, err := in.proc.Goroutines()
		if err != nil {
			t.Fatalf("instance %s: %v", in.name, err)
		}
		g[in.name] = n
	}
	return g
}

// TestClusterRedisRestart: two sessions on each instance, echo calls
// running on all of them through the balancer, and Redis stops. While it
// is down: a new stream gets 503 saying why; a POST on the instance that
// holds the session's stream gets 202 and its answer on the stream; a
// POST on another instance gets 503; nothing takes longer than a few
// seconds, and the open streams stay open. Redis comes back with its
// data: without restarting any Caddy, every session takes calls through
// every instance again, new streams open, every call that got 202 was
// answered exactly once and none that got 503 was answered at all. After,
// the instances hold no more Redis connections and no more goroutines
// than before.
func TestClusterRedisRestart(t *testing.T) {
	c := startCluster(t, clusterOptions{clusterExtra: "dial_timeout 1s\ntimeout 1s"})
	owned := map[string]*instance{}
	var all []*rawSession
	for _, in := range c.inst {
		for range 2 {
			s := openRaw(t, in.base(), nil)
			s.initialize(t, c.base())
			owned[s.ID] = in
			all = append(all, s)
		}
	}
	// Every path once, before anything is measured: each session called
	// through each instance.
	for i, s := range all {
		for _, in := range c.inst {
			s.echo(t, in.base(), fmt.Sprintf("warm-%d-%s", i, in.name), "warm")
		}
	}
	time.Sleep(time.Second)
	goroutinesBefore := c.goroutines(t)

	tr := startTraffic(c.base(), all, 100*time.Millisecond)
	defer func() {
		select {
		case <-tr.stop:
		default:
			tr.halt()
		}
	}()
	time.Sleep(2 * time.Second)
	footprintBefore := c.redisFootprint(t)
	t.Logf("before: redis connections %v (redis counts %d clients), goroutines %v", footprintBefore.conns, footprintBefore.clients, goroutinesBefore)

	c.redis.Stop()
	down := time.Now()
	t.Logf("redis stopped")

	timed := func(what string, f func()) {
		t.Helper()
		start := time.Now()
		f()
		if took := time.Since(start); took > hangLimit {
			t.Errorf("%s took %s with redis down, want under %s", what, took.Round(time.Millisecond), hangLimit)
		}
	}
	t.Run("redis down", func(t *testing.T) {
		for _, base := range append([]string{c.base()}, c.inst[0].base(), c.inst[1].base(), c.inst[2].base()) {
			timed("a new stream at "+base, func() {
				s, code, body := tryOpenRaw(t, base, nil)
				if s != nil {
					t.Errorf("GET %s/sse opened session %s with redis down, want 503", base, s.ID)
					s.close()
					return
				}
				if code != http.StatusServiceUnavailable {
					t.Errorf("GET %s/sse with redis down: %d %s, want 503", base, code, body)
				}
				t.Logf("GET %s/sse with redis down: %d %s", base, code, strings.TrimSpace(body))
				if lower := strings.ToLower(body); !strings.Contains(lower, "redis") && !strings.Contains(lower, "cluster") {
					t.Errorf("GET %s/sse with redis down: 503 %q, which does not say the cluster's store is unreachable", base, body)
				}
			})
		}
		for i, s := range all {
			owner := owned[s.ID]
			id := fmt.Sprintf("down-local-%d", i)
			timed("a POST on the owner", func() {
				code, body, err := s.post(owner.base(), echoRequest(id, id))
				if err != nil || code != http.StatusAccepted {
					t.Errorf("session %s: POST on its owner %s with redis down: %d %s %v, want 202", s.ID, owner.name, code, body, err)
				}
			})
			if m := s.waitAnswer(t, 10*time.Second, id); m.text() != id {
				t.Errorf("session %s: answer to %s with redis down: %s %+v", s.ID, id, m.Result, m.Error)
			}
			other := c.inst[(indexOf(c, owner)+1)%len(c.inst)]
			timed("a POST on another instance", func() {
				code, body, err := s.post(other.base(), echoRequest("down-cross-"+id, "x"))
				if err != nil || code != http.StatusServiceUnavailable {
					t.Errorf("session %s: POST on %s (owner %s) with redis down: %d %s %v, want 503", s.ID, other.name, owner.name, code, body, err)
				}
			})
		}
		for _, s := range all {
			if s.hasEnded() {
				t.Errorf("session %s: the stream ended while redis was down", s.ID)
			}
		}
		if d := time.Since(down); d < 3*time.Second {
			time.Sleep(3*time.Second - d) // keep redis down a while under traffic
		}
	})

	c.redis.Restart()
	up := time.Now()
	t.Logf("redis restarted after %s down", up.Sub(down).Round(time.Millisecond))

	t.Run("redis back", func(t *testing.T) {
		// Each session, through each instance: 503 while the instances
		// have not noticed Redis is back, then 202 and the answer.
		deadline := time.Now().Add(30 * time.Second)
		for i, s := range all {
			for _, in := range c.inst {
				for attempt := 0; ; attempt++ {
					id := fmt.Sprintf("up-%d-%s-%d", i, in.name, attempt)
					code, body, err := s.post(in.base(), echoRequest(id, id))
					if err == nil && code == http.StatusAccepted {
						if m := s.waitAnswer(t, 10*time.Second, id); m.text() != id {
							t.Errorf("session %s: answer to %s: %s %+v", s.ID, id, m.Result, m.Error)
						}
						break
					}
					if err != nil || code != http.StatusServiceUnavailable || time.Now().After(deadline) {
						t.Fatalf("session %s: POST through instance %s %s after redis came back: %d %s %v",
							s.ID, in.name, time.Since(up).Round(time.Millisecond), code, body, err)
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}
		t.Logf("every session took calls through every instance %s after the restart", time.Since(up).Round(time.Millisecond))
		// Redis kept its data: every instance lists the same sessions,
		// owned where their streams are.
		for _, in := range c.inst {
			list := c.sessions(t, in)
			if len(list) != len(all) {
				t.Errorf("instance %s lists %d sessions after the restart, want %d", in.name, len(list), len(all))
			}
			for _, s := range list {
				if want, ok := owned[s.ID]; !ok || s.Owner != want.name {
					t.Errorf("instance %s lists %+v after the restart, want one of the test's sessions, owned where its stream is", in.name, s)
				}
			}
		}

		// A new stream opens, works, and is closed again, so that the
		// counts below compare the same sessions.
		var fresh *rawSession
		eventually(t, 20*time.Second, "a new stream through the balancer", func() bool {
			s, code, body := tryOpenRaw(t, c.base(), nil)
			if s == nil && code != http.StatusServiceUnavailable {
				t.Fatalf("GET /sse after redis came back: %d %s", code, body)
			}
			fresh = s
			return s != nil
		})
		fresh.initialize(t, c.base())
		fresh.echo(t, c.base(), "fresh", "fresh")
		owner := c.ownerOf(t, c.inst[0], fresh.ID)
		if code, body, err := owner.proc.AdminDo(http.MethodDelete, "/mcp_sse/sessions/"+fresh.ID, ""); err != nil || code != http.StatusOK {
			t.Fatalf("DELETE the fresh session: %d %s %v", code, body, err)
		}
		fresh.waitEnd(t, 5*time.Second)
	})

	// The same load as before the stop, to compare Redis connections.
	time.Sleep(2 * time.Second)
	footprintAfter := c.redisFootprint(t)
	tr.halt()

	t.Run("traffic", func(t *testing.T) {
		results := tr.snapshot()
		accepted := map[string]int{} // id → session
		refused := map[string]int{}
		// A POST sent before Redis had finished stopping may have been
		// taken by Redis whose reply never came: its 503 is ambiguous
		// (README, "What it guarantees"), and its answer may still come.
		// One sent once Redis was down cannot have been taken.
		ambiguous := map[string]bool{}
		var codes = map[int]int{}
		for _, r := range results {
			codes[r.code]++
			switch {
			case r.err != nil:
				t.Errorf("background POST %s at %s: %v", r.id, r.at.Format("15:04:05.000"), r.err)
			case r.code == http.StatusAccepted:
				accepted[r.id] = r.session
			case r.code == http.StatusServiceUnavailable:
				refused[r.id] = r.session
				ambiguous[r.id] = r.at.Before(down)
			default:
				t.Errorf("background POST %s at %s: %d", r.id, r.at.Format("15:04:05.000"), r.code)
			}
			if r.took > hangLimit {
				t.Errorf("background POST %s at %s took %s", r.id, r.at.Format("15:04:05.000"), r.took.Round(time.Millisecond))
			}
		}
		t.Logf("background traffic: %d POSTs, by status %v", len(results), codes)
		if len(refused) == 0 {
			t.Errorf("no background POST got 503 while redis was down (%s): were any sent to an instance not holding the stream?", up.Sub(down).Round(time.Millisecond))
		}
		deadline := time.Now().Add(15 * time.Second)
		for id, i := range accepted {
			s := all[i]
			for count(s, func(m rpcMessage) bool { return m.Method == "" && m.id() == id }) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
		}
		time.Sleep(300 * time.Millisecond)
		lost := 0
		for i, s := range all {
			answers := map[string]int{}
			for _, m := range s.messages() {
				if m.Method == "" {
					answers[m.id()]++
					if strings.HasPrefix(m.id(), "bg-") && (m.Error != nil || m.text() != m.id()) {
						t.Errorf("session %s: answer to %s is %s %+v", s.ID, m.id(), m.Result, m.Error)
					}
				}
			}
			for id, n := range answers {
				if n > 1 {
					t.Errorf("session %s: %s answered %d times", s.ID, id, n)
				}
				if j, ok := refused[id]; ok && j == i {
					if ambiguous[id] {
						t.Logf("session %s: %s, in flight as Redis stopped, was refused with 503 and answered all the same (its write reached Redis, the reply did not)", s.ID, id)
					} else {
						t.Errorf("session %s: %s was refused with 503, sent with Redis down, but answered all the same", s.ID, id)
					}
				}
			}
			for id, j := range accepted {
				if j == i && answers[id] == 0 {
					lost++
					t.Errorf("session %s: %s got 202 and no answer", s.ID, id)
				}
			}
		}
		if lost > 0 {
			t.Errorf("%d of %d accepted background calls lost", lost, len(accepted))
		}
	})

	t.Run("no leak", func(t *testing.T) {
		t.Logf("after: redis connections %v (redis counts %d clients)", footprintAfter.conns, footprintAfter.clients)
		for name, before := range footprintBefore.conns {
			if after := footprintAfter.conns[name]; after > before+5 {
				t.Errorf("instance %s: %d connections to redis after the restart, %d before", name, after, before)
			}
		}
		if footprintAfter.clients > footprintBefore.clients+10 {
			t.Errorf("redis counts %d clients after the restart, %d before", footprintAfter.clients, footprintBefore.clients)
		}
		var after map[string]int
		limit := func(before int) int { return before + max(20, before/10) }
		deadline := time.Now().Add(20 * time.Second)
		for {
			after = c.goroutines(t)
			settled := true
			for name, before := range goroutinesBefore {
				settled = settled && after[name] <= limit(before)
			}
			if settled || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Logf("goroutines: before %v, after %v", goroutinesBefore, after)
		for name, before := range goroutinesBefore {
			if after[name] > limit(before) {
				t.Errorf("instance %s: %d goroutines 20s after the traffic stopped, %d before redis stopped", name, after[name], before)
				for _, in := range c.inst {
					if in.name == name {
						_, dump, _ := in.proc.AdminDo(http.MethodGet, "/debug/pprof/goroutine?debug=1", "")
						t.Logf("instance %s goroutines:\n%s", name, strings.Join(first(strings.Split(dump, "\n"), 150), "\n"))
					}
				}
			}
		}
		for _, s := range all {
			if s.hasEnded() {
				t.Errorf("session %s: the stream ended", s.ID)
			}
		}
	})
}

func indexOf(c *cluster, in *instance) int {
	for i, x := range c.inst {
		if x == in {
			return i
		}
	}
	return -1
}

// TestClusterLostReplyAnsweredOnce: the owner's write of a POST reaches
// Redis and Redis's reply is lost (as when Redis stops right after
// taking it). The owner cannot know the entry is in the inbox: it
// dispatches the POST itself (202, answered). When Redis is back and the
// owner reads its inbox again, it finds that entry and must not dispatch
// it a second time. (TestClusterRedisRestart saw a call answered twice
// this way, once in several runs.)
func TestClusterLostReplyAnsweredOnce(t *testing.T) {
	proxy := startRedisProxy(t)
	c := startCluster(t, clusterOptions{redisVia: map[string]*redisProxy{"a": proxy}})
	a := c.byName(t, "a")
	s := openRaw(t, a.base(), nil)
	defer s.close()
	s.initialize(t, a.base())
	s.echo(t, a.base(), "warm", "warm")
	inbox := c.prefix + ":s:{" + s.ID + "}:in"
	xlen := func() int {
		n, err := c.redis.Do("XLEN", inbox)
		if err != nil {
			t.Fatalf("XLEN %s: %v", inbox, err)
		}
		v, _ := strconv.Atoi(n)
		return v
	}
	eventually(t, 10*time.Second, "the inbox emptied of warm", func() bool { return xlen() == 0 })

	// A POST whose write reaches Redis while its reply is lost. One that
	// went out on a connection the proxy closed at once never reached
	// Redis; the next try goes out on another.
	var lost string
	for try := 0; try < 10 && lost == ""; try++ {
		proxy.cutOff()
		id := fmt.Sprintf("lost-%d", try)
		code, body, err := s.post(a.base(), echoRequest(id, id))
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("POST %s on the owner, cut off from Redis: %d %s %v, want 202 (dispatched there)", id, code, body, err)
		}
		if m := s.waitAnswer(t, 10*time.Second, id); m.text() != id {
			t.Fatalf("answer to %s: %s %+v", id, m.Result, m.Error)
		}
		if xlen() > 0 {
			lost = id
		}
		proxy.restore()
	}
	if lost == "" {
		t.Fatal("no write reached Redis with its reply lost in 10 tries")
	}
	t.Logf("%s reached the inbox, its reply lost; it was dispatched on the owner", lost)

	// Redis is back for the owner: it subscribes again and reads its
	// inbox; a new POST through another instance makes it read too.
	s.echo(t, c.byName(t, "b").base(), "after", "after")
	eventually(t, 15*time.Second, "the owner deleted every inbox entry", func() bool { return xlen() == 0 })
	if n := answers(s, lost); n != 1 {
		t.Errorf("%s answered %d times, want once", lost, n)
	}
}

// TestClusterRetriedWriteAnsweredOnce: a POST's write reaches Redis and
// its reply is lost with the connection (a network blip); the Redis
// client writes it again on a new connection, so the inbox holds the
// POST twice. The owner dispatches it once.
func TestClusterRetriedWriteAnsweredOnce(t *testing.T) {
	proxy := startRedisProxy(t)
	c := startCluster(t, clusterOptions{redisVia: map[string]*redisProxy{"b": proxy}})
	a, b := c.byName(t, "a"), c.byName(t, "b")
	s := openRaw(t, a.base(), nil)
	defer s.close()
	s.initialize(t, a.base())
	s.echo(t, b.base(), "warm", "warm")
	inbox := c.prefix + ":s:{" + s.ID + "}:in"
	var twice string
	for try := 0; try < 3 && twice == ""; try++ {
		// Two entries stay in the inbox until their answers are flushed:
		// XADDs are counted by the stream's entries-added.
		before := entriesAdded(t, c, inbox)
		// The post script names the channels' prefix: the reply to the
		// POST's write is the one lost.
		proxy.blip(c.prefix + ":n:\r\n")
		id := fmt.Sprintf("retried-%d", try)
		code, body, err := s.post(b.base(), echoRequest(id, id))
		proxy.restore()
		t.Logf("try %d: %d %v", try, code, err)
		switch {
		case err == nil && code == http.StatusServiceUnavailable:
			continue // the blip's retry failed too: the POST was refused
		case err != nil || code != http.StatusAccepted:
			t.Fatalf("POST %s: %d %s %v", id, code, body, err)
		}
		s.waitAnswer(t, 10*time.Second, id)
		added := entriesAdded(t, c, inbox) - before
		t.Logf("try %d: %d entries added", try, added)
		if added == 2 {
			twice = id
		}
	}
	if twice == "" {
		t.Fatal("no POST was written twice in 3 tries")
	}
	t.Logf("%s was written twice to the inbox", twice)
	s.echo(t, b.base(), "after", "after")
	time.Sleep(300 * time.Millisecond) // a second answer would come now
	if n := answers(s, twice); n != 1 {
		t.Errorf("%s answered %d times, want once", twice, n)
	}
}

// entriesAdded is how many entries were ever added to the stream key.
func entriesAdded(t *testing.T, c *cluster, key string) int {
	t.Helper()
	info, err := c.redis.Do("XINFO", "STREAM", key)
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0
		}
		t.Fatalf("XINFO STREAM %s: %v", key, err)
	}
	lines := strings.Split(info, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if lines[i] == "entries-added" {
			n, _ := strconv.Atoi(lines[i+1])
			return n
		}
	}
	t.Fatalf("XINFO STREAM %s has no entries-added: %q", key, info)
	return 0
}
