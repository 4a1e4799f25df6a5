package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestClusterOwnerKilled: an authenticated TypeScript client, through the
// balancer, has a slow call running when the instance holding its stream
// is killed (SIGKILL: no goodbye to Redis or anyone). The SDK's
// EventSource reconnects by itself, through the balancer, to a live
// instance; it proves its session by identity (basic_auth's user and the
// MCP-Protocol-Version it sends), so the new stream's endpoint names the
// same session, the new instance becomes its owner, the call that was in
// flight on the dead owner is dispatched again, and its answer arrives.
// Later calls work.
func TestClusterOwnerKilled(t *testing.T) {
	c := startCluster(t, clusterOptions{users: map[string]string{"alice": "alice-pw"}})
	auth, _ := http.NewRequest(http.MethodGet, "/", nil)
	auth.SetBasicAuth("alice", "alice-pw")
	node := startNode(t, "cluster_reconnect.mjs", c.base()+"/sse", auth.Header.Get("Authorization"))

	// The SDK reports errors it goes on from as ERROR lines: the cut
	// stream's are expected, any other (an answer to a request it no
	// longer waits for: a duplicate) is not.
	var sdkErrors []string
	next := func(within time.Duration) (string, []byte) {
		t.Helper()
		for {
			tag, data := node.next(within)
			if tag != "ERROR" {
				return tag, data
			}
			var e struct {
				Message string `json:"message"`
			}
			json.Unmarshal(data, &e)
			sdkErrors = append(sdkErrors, e.Message)
		}
	}

	var ready struct {
		Endpoint string `json:"endpoint"`
		Tools    int    `json:"tools"`
	}
	if tag, data := next(30 * time.Second); tag != "READY" || json.Unmarshal(data, &ready) != nil {
		t.Fatalf("node printed %s %s, want READY", tag, data)
	}
	if ready.Tools != len(demoTools) {
		t.Fatalf("listed %d tools, want %d", ready.Tools, len(demoTools))
	}
	id := sessionOf(t, ready.Endpoint)
	owner := c.ownerOf(t, c.inst[0], id)
	for _, s := range c.sessions(t, c.inst[0]) {
		if s.ID == id && s.Identity != "alice" {
			t.Errorf("session %s listed with identity %q, want alice", id, s.Identity)
		}
	}
	t.Logf("session %s is owned by instance %s", id, owner.name)

	// 10 steps of 400 ms: the call is still running when the owner dies,
	// and takes as long again once dispatched anew.
	const steps = 10
	node.say(fmt.Sprintf("slow %d 400", steps))
	for progressed := false; !progressed; {
		tag, data := next(20 * time.Second)
		switch tag {
		case "SENT":
		case "PROGRESS":
			progressed = true
		default:
			t.Fatalf("before the first progress, node printed %s %s", tag, data)
		}
	}
	owner.proc.Kill9()
	killed := time.Now()
	t.Logf("killed instance %s (pid %d) with the slow call in flight", owner.name, owner.proc.PID())

	var reconnects int
	var slow struct {
		Text     string `json:"text"`
		Endpoint string `json:"endpoint"`
	}
	for done := false; !done; {
		tag, data := next(45 * time.Second)
		switch tag {
		case "PROGRESS", "SENT":
		case "ENDPOINT":
			var ep struct {
				Endpoint string `json:"endpoint"`
			}
			if err := json.Unmarshal(data, &ep); err != nil {
				t.Fatalf("ENDPOINT %s: %v", data, err)
			}
			reconnects++
			if got := sessionOf(t, ep.Endpoint); got != id {
				t.Fatalf("reconnected %s after the kill to session %s, want the same session %s", time.Since(killed).Round(time.Millisecond), got, id)
			}
			t.Logf("reconnected to session %s %s after the kill", id, time.Since(killed).Round(time.Millisecond))
		case "SLOW":
			if err := json.Unmarshal(data, &slow); err != nil {
				t.Fatalf("SLOW %s: %v", data, err)
			}
			done = true
		default:
			t.Fatalf("after the kill, node printed %s %s", tag, data)
		}
	}
	t.Logf("the slow call answered %s after the kill", time.Since(killed).Round(time.Millisecond))
	if reconnects == 0 {
		t.Errorf("the slow call was answered (%+v) with no reconnect after its owner was killed", slow)
	}
	if want := fmt.Sprintf("done after %d steps", steps); slow.Text != want || sessionOf(t, slow.Endpoint) != id {
		t.Errorf("slow call: %+v, want %q on session %s", slow, want, id)
	}

	live := c.live()
	if len(live) != len(c.inst)-1 {
		t.Fatalf("%d instances alive, want %d", len(live), len(c.inst)-1)
	}
	for _, in := range live {
		if o := c.ownerOf(t, in, id); o == owner {
			t.Errorf("instance %s still names the killed instance %s as the owner of session %s", in.name, owner.name, id)
		}
		for _, s := range c.sessions(t, in) {
			if s.ID == id && (s.State != "streaming" || s.Identity != "alice") {
				t.Errorf("instance %s lists the session taken over as %+v, want alice's, streaming", in.name, s)
			}
		}
	}

	node.say("call after the takeover")
	var called struct {
		Text     string `json:"text"`
		Endpoint string `json:"endpoint"`
	}
	for {
		tag, data := next(20 * time.Second)
		if tag == "SENT" || tag == "PROGRESS" {
			continue
		}
		if tag != "CALLED" || json.Unmarshal(data, &called) != nil {
			t.Fatalf("node printed %s %s, want CALLED", tag, data)
		}
		break
	}
	if called.Text != "after the takeover" || sessionOf(t, called.Endpoint) != id {
		t.Errorf("echo after the takeover: %+v, want its text on session %s", called, id)
	}
	node.quit()
	for _, e := range sdkErrors {
		if !strings.HasPrefix(e, "SSE error") && !lastProgressLate(e, steps) {
			t.Errorf("the TypeScript SDK reported %q", e)
		}
	}
	t.Logf("the SDK reported %d errors it went on from: %q", len(sdkErrors), sdkErrors)
}

// lastProgressLate reports whether the SDK's error e is about the last
// progress notification of a call of steps steps arriving after its
// result. The SDK runs progress handlers a microtask late but drops a
// request's handler as soon as its result is read: when mcp_sse writes the
// last progress and the result in one flush, the last progress finds no
// handler (see mcpstdio's TestTypeScriptClients). Any other progress
// arriving so is an error.
func lastProgressLate(e string, steps int) bool {
	rest, ok := strings.CutPrefix(e, "Received a progress notification for an unknown token: ")
	if !ok {
		return false
	}
	var n struct {
		Params struct {
			Progress float64 `json:"progress"`
			Total    float64 `json:"total"`
		} `json:"params"`
	}
	return json.Unmarshal([]byte(rest), &n) == nil && n.Params.Progress == float64(steps) && n.Params.Total == float64(steps)
}

// sessionOf is the session id an endpoint URL names.
func sessionOf(t *testing.T, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil || u.Query().Get("session_id") == "" {
		t.Fatalf("endpoint %q names no session: %v", endpoint, err)
	}
	return u.Query().Get("session_id")
}
