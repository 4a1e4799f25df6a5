package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slowCall is a tools/call of the demo's slow tool that runs for about
// steps × delay, with pad bytes in its _meta (to make the body that
// large; the tool ignores them).
func slowCall(id string, steps, delayMS, pad int) map[string]any {
	params := map[string]any{"name": "slow", "arguments": map[string]any{"steps": steps, "delay_ms": delayMS}}
	if pad > 0 {
		params["_meta"] = map[string]any{"pad": strings.Repeat("x", pad)}
	}
	return map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// postEventually posts body until it is accepted, failing the test if it
// is not within the deadline; refusals with want are waited out.
func postEventually(t *testing.T, s *rawSession, base, body string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, text, err := s.post(base, body)
		if err == nil && code == http.StatusAccepted {
			return
		}
		if err != nil || code != want || time.Now().After(deadline) {
			t.Fatalf("session %s: POST through %s: %d %s %v, want 202 (after %d) within %s", s.ID, base, code, text, err, want, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterMaxInflight: max_inflight bounds a session's requests in
// flight across the cluster as on one instance, counted in messages (a
// batch of 2 counts 2), wherever the POSTs land; responses count apart;
// the room comes back as the calls are answered.
func TestClusterMaxInflight(t *testing.T) {
	c := startCluster(t, clusterOptions{handlerExtra: "max_inflight 2"})
	a, b := c.inst[0], c.inst[1]
	s := openRaw(t, a.base(), nil)
	defer s.close()
	s.initialize(t, a.base())
	// notifications/initialized, answered 202 once in the inbox, holds one
	// of its 2 places until the owner has dispatched it and deleted its
	// entry: the batch of 2 must not race it.
	waitInboxEmpty(t, c, s)

	// Two calls that run for seconds, in one batch, through an instance
	// that does not hold the stream.
	batch := jsonText(t, []any{slowCall("slow-1", 20, 500, 0), slowCall("slow-2", 20, 500, 0)})
	s.mustPost(t, b.base(), batch)
	for _, in := range []*instance{b, a, c.inst[2]} {
		code, body, err := s.post(in.base(), jsonText(t, slowCall("slow-3", 1, 10, 0)))
		if err != nil || code != http.StatusTooManyRequests || !strings.Contains(body, "max_inflight 2") {
			t.Errorf("a 3rd request through %s with 2 in flight: %d %s %v, want 429 naming max_inflight 2", in.name, code, body, err)
		}
	}
	// A response to a request the server never sent still passes: the
	// client's responses are counted apart.
	if code, body, err := s.post(b.base(), `{"jsonrpc":"2.0","id":"nobody-asked","result":{}}`); err != nil || code != http.StatusAccepted {
		t.Errorf("a response with 2 requests in flight: %d %s %v, want 202", code, body, err)
	}
	s.waitAnswer(t, 60*time.Second, "slow-1")
	s.waitAnswer(t, 60*time.Second, "slow-2")
	// Answered and flushed: the owner deletes their entry, and the room is
	// back (429 until the deletion reaches Redis).
	postEventually(t, s, b.base(), echoRequest("after", "after"), http.StatusTooManyRequests, 15*time.Second)
	if m := s.waitAnswer(t, 15*time.Second, "after"); m.text() != "after" {
		t.Errorf("answer to after: %s %+v", m.Result, m.Error)
	}

	// The case: batches of 2 calls (running 30 s) and responses,
	// through every instance in turn, 12 of each. At most 2 requests and
	// 2 responses are taken.
	waitInboxEmpty(t, c, s)
	requests, responses := 0, 0
	for i := range 12 {
		in := c.inst[i%len(c.inst)]
		batch := jsonText(t, []any{slowCall(fmt.Sprintf("flood-%d-a", i), 60, 500, 0), slowCall(fmt.Sprintf("flood-%d-b", i), 60, 500, 0)})
		if code, _, err := s.post(in.base(), batch); err == nil && code == http.StatusAccepted {
			requests += 2
		}
		if code, _, err := s.post(in.base(), fmt.Sprintf(`{"jsonrpc":"2.0","id":"unasked-%d","result":{}}`, i)); err == nil && code == http.StatusAccepted {
			responses++
		}
	}
	t.Logf("12 batches of 2 requests and 12 responses with max_inflight 2: %d requests and %d responses taken", requests, responses)
	if requests != 2 {
		t.Errorf("%d requests taken, want 2", requests)
	}
}

// waitInboxEmpty waits until s's inbox in Redis holds no entry: every
// message taken has been dispatched by the owner and deleted, and what it
// held of max_inflight and max_pending_bytes is given back.
func waitInboxEmpty(t *testing.T, c *cluster, s *rawSession) {
	t.Helper()
	eventually(t, 15*time.Second, "session "+s.ID+"'s inbox emptied", func() bool {
		n, err := c.redis.Do("XLEN", c.prefix+":s:{"+s.ID+"}:in")
		return err == nil && n == "0"
	})
}

// TestClusterPendingBytes: a POST's body stays counted against
// max_pending_bytes on the instance that took it until its entry is done
// on the owner, and a session's inbox holds at most what one client may
// hold of it (max(max_pending_bytes/4, max_message_size)).
func TestClusterPendingBytes(t *testing.T) {
	c := startCluster(t, clusterOptions{handlerExtra: "max_message_size 1MiB\nmax_pending_bytes 2MiB"})
	a, b := c.inst[0], c.inst[1]
	s1 := openRaw(t, a.base(), nil)
	defer s1.close()
	s1.initialize(t, a.base())
	s2 := openRaw(t, a.base(), nil)
	defer s2.close()
	s2.initialize(t, a.base())

	const pad = 600 << 10
	s1.mustPost(t, b.base(), jsonText(t, slowCall("big-1", 10, 500, pad)))
	// s1's inbox holds 600 KiB of its 1 MiB.
	code, body, err := s1.post(b.base(), jsonText(t, slowCall("big-2", 1, 10, pad)))
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("600 KiB more on a session holding 600 KiB of 1 MiB: %d %s %v, want 503", code, body, err)
	}
	// b still counts big-1's body for this client (1 MiB at most).
	code, body, err = s2.post(b.base(), jsonText(t, slowCall("big-3", 1, 10, pad)))
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("600 KiB through b, which holds 600 KiB of the client's 1 MiB: %d %s %v, want 503", code, body, err)
	}
	// Small messages pass.
	s2.echo(t, b.base(), "small", "small")
	if n := count(s1, func(m rpcMessage) bool { return m.Method == "" && m.id() == "big-2" }); n != 0 {
		t.Errorf("big-2, refused, was answered")
	}
	// big-1 answered: its entry is deleted, b is told, and gives the bytes
	// back.
	s1.waitAnswer(t, 60*time.Second, "big-1")
	postEventually(t, s2, b.base(), jsonText(t, slowCall("big-4", 1, 10, pad)), http.StatusServiceUnavailable, 15*time.Second)
	s2.waitAnswer(t, 15*time.Second, "big-4")

	// The case: 40 POSTs of nearly 1 MiB at one session, through
	// every instance, while the first runs (for 30 s). Its inbox takes
	// one at a time, and Redis holds about that much more.
	inbox := c.prefix + ":s:{" + s1.ID + "}:in"
	eventually(t, 15*time.Second, "s1's inbox emptied", func() bool {
		n, err := c.redis.Do("XLEN", inbox)
		return err == nil && n == "0"
	})
	usedBefore := usedMemory(t, c)
	accepted := 0
	for i := range 40 {
		in := c.inst[i%len(c.inst)]
		code, body, err := s1.post(in.base(), jsonText(t, slowCall(fmt.Sprintf("flood-%d", i), 60, 500, 1000<<10)))
		switch {
		case err == nil && code == http.StatusAccepted:
			accepted++
		case err == nil && code == http.StatusServiceUnavailable:
		case err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")):
			// Refused with 503 and Connection: close before the whole
			// body was read (max_pending_bytes while reading it): the
			// client's write of the rest fails.
		default:
			t.Fatalf("flood-%d through %s: %d %s %v", i, in.name, code, body, err)
		}
	}
	grew := usedMemory(t, c) - usedBefore
	t.Logf("40 POSTs of 1000 KiB at one session: %d accepted; Redis used_memory grew by %.1f MiB", accepted, float64(grew)/(1<<20))
	if accepted != 1 {
		t.Errorf("%d of 40 POSTs of 1000 KiB accepted at a session whose inbox holds 1 MiB, want 1", accepted)
	}
}

// usedMemory is Redis's used_memory, in bytes.
func usedMemory(t *testing.T, c *cluster) int64 {
	t.Helper()
	info, err := c.redis.Do("INFO", "memory")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("INFO memory has no used_memory: %q", info)
	return 0
}
