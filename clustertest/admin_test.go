package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// notification is a notifications/message carrying data.
func notification(data string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":%q}}`, data)
}

// isNotification matches the notifications/message carrying data.
func isNotification(data string) func(rpcMessage) bool {
	return func(m rpcMessage) bool {
		var p struct {
			Data string `json:"data"`
		}
		return m.Method == "notifications/message" && json.Unmarshal(m.Params, &p) == nil && p.Data == data
	}
}

// count is how many of s's messages match.
func count(s *rawSession, match func(rpcMessage) bool) int {
	n := 0
	for _, m := range s.messages() {
		if match(m) {
			n++
		}
	}
	return n
}

// TestClusterAdmin: with two sessions on each instance (their streams
// opened on it directly), every instance's admin API lists the six, each
// with its owner; GET of one session works on any instance; a push
// through an instance that does not own the session arrives on its
// stream; a broadcast through one instance reaches every session of the
// cluster once; a DELETE through a non-owner ends the stream, and the
// session is gone everywhere.
func TestClusterAdmin(t *testing.T) {
	c := startCluster(t, clusterOptions{})
	owned := map[string]*instance{} // session id → the instance whose stream holds it
	var all []*rawSession
	for _, in := range c.inst {
		for range 2 {
			s := openRaw(t, in.base(), nil)
			s.initialize(t, c.base())
			owned[s.ID] = in
			all = append(all, s)
		}
	}

	t.Run("list", func(t *testing.T) {
		for _, in := range c.inst {
			list := c.sessions(t, in)
			if len(list) != len(all) {
				t.Errorf("instance %s lists %d sessions, want %d: %+v", in.name, len(list), len(all), list)
			}
			for _, s := range list {
				want, ok := owned[s.ID]
				switch {
				case !ok:
					t.Errorf("instance %s lists a session the test did not open: %+v", in.name, s)
				case s.Owner != want.name:
					t.Errorf("instance %s lists session %s with owner %q, want %q", in.name, s.ID, s.Owner, want.name)
				}
			}
		}
		for _, s := range all {
			for _, in := range c.inst {
				code, body, err := in.proc.AdminDo(http.MethodGet, "/mcp_sse/sessions/"+s.ID, "")
				var got sessionInfo
				if err != nil || code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
					t.Errorf("instance %s: GET /mcp_sse/sessions/%s: %d %s %v", in.name, s.ID, code, body, err)
					continue
				}
				if got.ID != s.ID || got.Owner != owned[s.ID].name || got.State != "streaming" {
					t.Errorf("instance %s: session %s is %+v, want owner %s, streaming", in.name, s.ID, got, owned[s.ID].name)
				}
			}
		}
		unknown := "00000000-0000-4000-8000-000000000000"
		for _, in := range c.inst {
			if code, body, err := in.proc.AdminDo(http.MethodGet, "/mcp_sse/sessions/"+unknown, ""); err != nil || code != http.StatusNotFound {
				t.Errorf("instance %s: GET of an unknown session: %d %s %v, want 404", in.name, code, body, err)
			}
		}
	})

	t.Run("push through a non-owner", func(t *testing.T) {
		for i, s := range all {
			via := c.inst[(i/2+1)%len(c.inst)] // the next instance: never the owner
			if via == owned[s.ID] {
				t.Fatalf("test bug: pushing to %s through its owner", s.ID)
			}
			data := fmt.Sprintf("pushed to %s via %s", s.ID, via.name)
			code, body, err := via.proc.AdminDo(http.MethodPost, "/mcp_sse/sessions/"+s.ID+"/messages", notification(data))
			if err != nil || code != http.StatusAccepted {
				t.Fatalf("instance %s: push to session %s (owned by %s): %d %s %v, want 202",
					via.name, s.ID, owned[s.ID].name, code, body, err)
			}
			s.waitMessage(t, 5*time.Second, "the push through instance "+via.name, isNotification(data))
		}
	})

	t.Run("broadcast", func(t *testing.T) {
		data := "broadcast through a"
		code, body, err := c.byName(t, "a").proc.AdminDo(http.MethodPost, "/mcp_sse/broadcast", notification(data))
		if err != nil || code != http.StatusOK {
			t.Fatalf("POST /mcp_sse/broadcast: %d %s %v", code, body, err)
		}
		var got struct {
			Sent     int `json:"sent"`
			Sessions int `json:"sessions"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil || got.Sent != len(all) || got.Sessions != len(all) {
			t.Errorf("broadcast answered %s, want sent %d of %d sessions", body, len(all), len(all))
		}
		for _, s := range all {
			s.waitMessage(t, 5*time.Second, "the broadcast", isNotification(data))
		}
		time.Sleep(300 * time.Millisecond) // a duplicate would come now
		for _, s := range all {
			if n := count(s, isNotification(data)); n != 1 {
				t.Errorf("session %s (owned by %s) got the broadcast %d times", s.ID, owned[s.ID].name, n)
			}
		}
	})

	t.Run("delete through a non-owner", func(t *testing.T) {
		victim := all[len(all)-1] // owned by c
		via := c.byName(t, "a")
		code, body, err := via.proc.AdminDo(http.MethodDelete, "/mcp_sse/sessions/"+victim.ID, "")
		if err != nil || code != http.StatusOK || !strings.Contains(body, victim.ID) {
			t.Fatalf("instance a: DELETE session %s (owned by %s): %d %s %v", victim.ID, owned[victim.ID].name, code, body, err)
		}
		victim.waitEnd(t, 5*time.Second)
		for _, in := range c.inst {
			eventually(t, 5*time.Second, "instance "+in.name+" forgets the deleted session", func() bool {
				code, _, err := in.proc.AdminDo(http.MethodGet, "/mcp_sse/sessions/"+victim.ID, "")
				return err == nil && code == http.StatusNotFound
			})
			if n := len(c.sessions(t, in)); n != len(all)-1 {
				t.Errorf("instance %s lists %d sessions after the DELETE, want %d", in.name, n, len(all)-1)
			}
		}
		for _, in := range c.inst {
			if code, body, err := victim.post(in.base(), echoRequest("after-delete", "x")); err != nil || code != http.StatusNotFound {
				t.Errorf("POST to the deleted session through instance %s: %d %s %v, want 404", in.name, code, body, err)
			}
		}
		for _, s := range all[:len(all)-1] {
			if s.hasEnded() {
				t.Errorf("session %s's stream ended with another's DELETE", s.ID)
			}
		}
		var ids []string
		for _, s := range all {
			ids = append(ids, s.ID)
		}
		c.checkKeys(t, ids)
	})
}
