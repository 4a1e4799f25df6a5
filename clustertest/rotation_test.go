package clustertest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	sealing "github.com/mcpsse/caddy-mcp-sse/cluster"
)

// setSecrets reloads in's config with secret and previous as its cluster
// secrets, through its admin API, as an operator rotating the key would.
func (c *cluster) setSecrets(t *testing.T, in *instance, secret string, previous ...string) {
	t.Helper()
	code, body, err := in.proc.AdminDo(http.MethodGet, "/config/apps/mcp_sse/cluster", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("instance %s: GET its cluster config: %d %s %v", in.name, code, body, err)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(body), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["secret"] = secret
	delete(cfg, "previous_secrets")
	if len(previous) > 0 {
		cfg["previous_secrets"] = previous
	}
	b, _ := json.Marshal(cfg)
	if code, body, err := in.proc.AdminDo(http.MethodPatch, "/config/apps/mcp_sse/cluster", string(b)); err != nil || code != http.StatusOK {
		t.Fatalf("instance %s: reload with new secrets: %d %s %v", in.name, code, body, err)
	}
}

// TestClusterSecretRotation: the key is rotated by reloading the
// instances one by one with the new secret current and the old one
// previous: a session goes on through every step, its stream never cut
// (a reload keeps the node and its sessions), with calls crossing between
// rotated instances and not yet rotated ones; then the old one is
// dropped. An instance given a key the others lack is heard by none: the
// owner drops what it cannot open and logs the key id it lacks.
func TestClusterSecretRotation(t *testing.T) {
	c := startCluster(t, clusterOptions{})
	a, b, cc := c.byName(t, "a"), c.byName(t, "b"), c.byName(t, "c")
	s := openRaw(t, a.base(), nil)
	s.initialize(t, b.base())
	if o := c.ownerOf(t, b, s.ID); o != a {
		t.Fatalf("session %s is owned by %s, want a", s.ID, o.name)
	}
	old, next := c.secret, newSecret()
	echoes := func(step string, via ...*instance) {
		t.Helper()
		for _, in := range via {
			id := step + "-via-" + in.name
			// A POST right after a reload can be cut by Caddy's listener
			// handover before any server read it (a transport error, no
			// status): any client faces that on any reload, and sends it
			// again.
			for try := 1; ; try++ {
				code, reply, err := s.post(in.base(), echoRequest(id, id))
				if err == nil && code == http.StatusAccepted {
					break
				}
				if err == nil || try == 5 {
					t.Fatalf("POST %s via %s: %d %s %v", id, in.name, code, reply, err)
				}
			}
			if m := s.waitAnswer(t, 15*time.Second, id); m.text() != id {
				t.Fatalf("%s answered %s %+v", id, m.Result, m.Error)
			}
		}
	}
	echoes("before", a, b, cc)
	// The owner first: it opens what the others still seal with the old
	// key.
	c.setSecrets(t, a, next, old)
	echoes("a-rotated", a, b, cc)
	c.setSecrets(t, b, next, old)
	echoes("b-rotated", a, b, cc)
	c.setSecrets(t, cc, next, old)
	echoes("all-rotated", a, b, cc)
	for _, in := range []*instance{a, b, cc} {
		c.setSecrets(t, in, next)
	}
	echoes("old-dropped", a, b, cc)
	if s.hasEnded() {
		t.Fatal("the session's stream ended during the rotation")
	}
	if o := c.ownerOf(t, cc, s.ID); o != a {
		t.Errorf("after the rotation, the session is owned by %s, want a", o.name)
	}

	// c alone with another key: what it posts, the owner cannot open.
	stray := newSecret()
	c.setSecrets(t, cc, stray)
	kr, err := sealing.NewKeyring(stray)
	if err != nil {
		t.Fatal(err)
	}
	for try := 1; ; try++ {
		code, reply, err := s.post(cc.base(), echoRequest("stray", "sealed with a key nobody has"))
		if err == nil && code == http.StatusAccepted {
			break
		}
		if err == nil || try == 5 {
			t.Fatalf("POST stray via c: %d %s %v", code, reply, err)
		}
	}
	eventually(t, 10*time.Second, "instance a logging the key id it lacks", func() bool {
		log := a.proc.Log()
		return strings.Contains(log, "no secret of this instance opens it") && strings.Contains(log, kr.ID())
	})
	echoes("after-stray", a, b)
	if n := answers(s, "stray"); n != 0 {
		t.Errorf("the call sealed with a key the owner lacks was answered %d times", n)
	}
	if s.hasEnded() {
		t.Fatal("the session's stream ended")
	}
}
