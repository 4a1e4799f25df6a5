package clustertest

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	sealing "github.com/mcpsse/caddy-mcp-sse/cluster"
)

// TestClusterSecrets: what clients send crosses Redis encrypted. A
// connection watching every command (MONITOR), one subscribed to every
// channel of the cluster, and the raw inbox entry of a message waiting
// for its frozen owner show no password, no Authorization value, no
// message text and no pushed message; the clients get their answers.
func TestClusterSecrets(t *testing.T) {
	const password = "pw-alice-3d9f1c"
	c := startCluster(t, clusterOptions{users: map[string]string{"alice": password}})
	monitor := c.redis.Record(t, "MONITOR")
	channels := c.redis.Record(t, "PSUBSCRIBE", c.prefix+":*")
	a, b := c.byName(t, "a"), c.byName(t, "b")
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth("alice", password)
	header := r.Header
	authorization := header.Get("Authorization")

	s := openRaw(t, a.base(), header)
	defer s.close()
	s.initialize(t, b.base())
	if o := c.ownerOf(t, b, s.ID); o != a {
		t.Fatalf("session %s is owned by %s, want a", s.ID, o.name)
	}
	// Bodies travel in JSON as base64: neither form may show.
	var secrets []string
	body := func(id, text string) string {
		req := echoRequest(id, text)
		secrets = append(secrets, text, base64.StdEncoding.EncodeToString([]byte(req))[:40])
		return req
	}
	body("crossing", "crossing-text-51b7e0")
	s.echo(t, b.base(), "crossing", "crossing-text-51b7e0")

	// The owner frozen, a message waits in the inbox: read it raw.
	a.proc.Freeze()
	frozen := body("waiting", "waiting-text-0c4a92")
	s.mustPost(t, b.base(), frozen)
	raw, err := c.redis.Do("XRANGE", c.prefix+":s:{"+s.ID+"}:in", "-", "+")
	a.proc.Thaw()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := sealing.NewKeyring(c.secret)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(raw, "\nm\n"+kr.ID()) {
		t.Errorf("the waiting inbox entry does not start with the key id %s:\n%q", kr.ID(), raw)
	}
	if m := s.waitAnswer(t, 15*time.Second, "waiting"); m.text() != "waiting-text-0c4a92" {
		t.Errorf("the waiting call answered %s %+v", m.Result, m.Error)
	}

	// A push through the admin API of an instance that does not own the
	// session crosses Redis too.
	pushed := "pushed-secret-8e21d3"
	if code, reply, err := b.proc.AdminDo(http.MethodPost, "/mcp_sse/sessions/"+s.ID+"/messages", notification(pushed)); err != nil || code != http.StatusAccepted {
		t.Fatalf("push through b: %d %s %v", code, reply, err)
	}
	s.waitMessage(t, 10*time.Second, "the push", isNotification(pushed))

	secrets = append(secrets, password, authorization, strings.TrimPrefix(authorization, "Basic "), pushed, "Authorization")
	seen := map[string][]byte{"the raw inbox entry": []byte(raw), "MONITOR": monitor.Bytes(), "PSUBSCRIBE " + c.prefix + ":*": channels.Bytes()}
	// The recordings did see the traffic: the session id crosses in clear.
	for where, got := range seen {
		if !bytes.Contains(got, []byte(s.ID)) && where != "the raw inbox entry" {
			t.Errorf("%s never saw session %s: it recorded nothing", where, s.ID)
		}
		for _, secret := range secrets {
			if bytes.Contains(got, []byte(secret)) {
				t.Errorf("%s shows %q in clear", where, secret)
			}
		}
	}
}
