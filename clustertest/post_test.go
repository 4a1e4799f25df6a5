package clustertest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClusterPostChecks: a POST on an instance that does not hold the
// session is checked as on one instance, against the cluster's metadata:
// 400 for a malformed id, 404 for a session the cluster does not know,
// 403 for another identity, 413 over max_message_size, 429 once
// max_inflight messages wait in the session's inbox (a client's answer to
// the server still passes); nothing refused reaches the owner.
func TestClusterPostChecks(t *testing.T) {
	c := startCluster(t, clusterOptions{
		users:        map[string]string{"alice": "alice-pw", "bob": "bob-pw"},
		handlerExtra: "max_message_size 2KiB\nmax_inflight 2",
	})
	a, b := c.byName(t, "a"), c.byName(t, "b")
	as := func(user string) http.Header {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(user, user+"-pw")
		return r.Header
	}
	s := openRaw(t, a.base(), as("alice"))
	defer s.close()
	s.initialize(t, b.base())
	if o := c.ownerOf(t, b, s.ID); o != a {
		t.Fatalf("session %s is owned by %s, want a", s.ID, o.name)
	}
	onB := s.messageURL(b.base())

	check := func(what, target string, header http.Header, body string, want int) {
		t.Helper()
		code, reply, err := postJSON(target, header, body)
		if err != nil || code != want {
			t.Errorf("%s: %d %s %v, want %d", what, code, reply, err, want)
		}
		if want != http.StatusAccepted && !strings.Contains(reply, `"error"`) {
			t.Errorf("%s: body %q is no JSON-RPC error", what, reply)
		}
	}
	base := b.base() + "/message?session_id="
	check("malformed session id", base+"not*valid", as("alice"), echoRequest("m", "x"), http.StatusBadRequest)
	check("unknown session", base+"00000000-0000-4000-8000-000000000000", as("alice"), echoRequest("u", "x"), http.StatusNotFound)
	check("another identity", onB, as("bob"), echoRequest("bob-1", "from bob"), http.StatusForbidden)
	// As on one instance, the identity is checked before the body is
	// read: another identity learns nothing from 413 or 400.
	check("another identity, over max_message_size", onB, as("bob"), echoRequest("bob-big", strings.Repeat("x", 4096)), http.StatusForbidden)
	check("another identity, malformed JSON", onB, as("bob"), `{"jsonrpc":`, http.StatusForbidden)
	check("over max_message_size", onB, as("alice"), echoRequest("big", strings.Repeat("x", 4096)), http.StatusRequestEntityTooLarge)
	check("malformed JSON", onB, as("alice"), `{"jsonrpc":`, http.StatusBadRequest)

	// Two slow calls fill the inbox (entries leave it once answered); the
	// third waits its turn with 429, an answer to the server passes.
	// notifications/initialized holds a place until the owner has
	// dispatched it and deleted its entry: wait for that first.
	waitInboxEmpty(t, c, s)
	slow := func(id string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"method":"tools/call","params":{"name":"slow","arguments":{"steps":4,"delay_ms":500}}}`, id)
	}
	check("first slow call", onB, as("alice"), slow("slow-1"), http.StatusAccepted)
	check("second slow call", onB, as("alice"), slow("slow-2"), http.StatusAccepted)
	check("third call, max_inflight 2 waiting", onB, as("alice"), echoRequest("third", "x"), http.StatusTooManyRequests)
	check("an answer to the server", onB, as("alice"), `{"jsonrpc":"2.0","id":"srv-1","result":{}}`, http.StatusAccepted)
	s.waitAnswer(t, 10*time.Second, "slow-1")
	s.waitAnswer(t, 10*time.Second, "slow-2")
	// Answered and flushed: the inbox has room again.
	eventually(t, 5*time.Second, "the inbox to make room", func() bool {
		code, _, err := postJSON(onB, as("alice"), echoRequest("fourth", "fourth"))
		return err == nil && code == http.StatusAccepted
	})
	s.waitAnswer(t, 5*time.Second, "fourth")
	time.Sleep(300 * time.Millisecond)
	for _, id := range []string{"bob-1", "big", "third", "m", "u"} {
		if n := answers(s, id); n != 0 {
			t.Errorf("refused %s was answered %d time(s)", id, n)
		}
	}
}
