package cluster_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/internal/redistest"
)

// What crosses Redis is sealed: whoever reads its keys, watches its
// commands or listens on its channels sees no header value, body or
// pushed message of a client; the instances still read them.
func TestWhatCrossesRedisIsSealed(t *testing.T) {
	const (
		auth = "Bearer auth-secret-7c1e"
		text = "body-text-9f3a"
		push = "pushed-secret-5d2b"
		user = "user-value-4e8f"
		// The bridge's state of a session holds what its client said of
		// itself (clientInfo, capabilities) and what it subscribed to.
		bridge = `{"clientInfo":{"name":"bridge-secret-1a2b"}}`
	)
	r := redistest.Start(t)
	monitor := r.Record(t, "MONITOR")
	channels := r.Record(t, "PSUBSCRIBE", "t:*")
	a, aev := open(t, r, "a")
	b, _ := open(t, r, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := owned("s-1", "tok-1")
	o.Bridge = bridge
	if err := a.Register(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Refresh(ctx, []cluster.Owned{o}); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Lookup(ctx, "s-1"); err != nil || m.Bridge != bridge {
		t.Errorf("another instance reads the bridge's state as %q (%v), want %q", m.Bridge, err, bridge)
	}
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + text + `"}}}`)
	p := &cluster.Posted{Body: body, Header: http.Header{"Authorization": {auth}}, Values: map[string]string{"http.auth.user.id": user}, At: time.Now().UnixNano()}
	res, err := b.Post(ctx, "s-1", "alice", "s1", p, cluster.Load{Work: 1})
	if err != nil || !res.Listening {
		t.Fatalf("post: %+v %v", res, err)
	}
	aev.waitFor(t, "a's doorbell", func(e *events) bool { return len(e.doorbells) == 1 })
	aev.mu.Lock()
	d := aev.doorbells[0]
	aev.mu.Unlock()
	if d.Posted == nil || !bytes.Equal(d.Posted.Body, body) || d.Posted.Header.Get("Authorization") != auth || d.Posted.Values["http.auth.user.id"] != user {
		t.Errorf("the owner's doorbell carries %+v, want the posted message", d.Posted)
	}
	pending, err := a.Pending(ctx, "s-1", "", 10)
	if err != nil || len(pending) != 1 || !bytes.Equal(pending[0].Body, body) || pending[0].Header.Get("Authorization") != auth {
		t.Errorf("the owner reads the inbox: %+v %v", pending, err)
	}
	data, _ := json.Marshal(map[string]string{"method": "notifications/message", "text": push})
	if _, err := b.Send(ctx, "a", cluster.Control{Op: cluster.OpPush, ID: "s-1", Data: data}); err != nil {
		t.Fatal(err)
	}
	aev.waitFor(t, "a's control", func(e *events) bool { return len(e.controls) == 1 })
	aev.mu.Lock()
	c := aev.controls[0]
	aev.mu.Unlock()
	if c.Op != cluster.OpPush || c.ID != "s-1" || !bytes.Equal(c.Data, data) || c.From != "b" {
		t.Errorf("the control a received: %+v", c)
	}

	raw, err := r.Do("XRANGE", "t:s:{s-1}:in", "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	rawMeta, err := r.Do("HGETALL", "t:s:{s-1}")
	if err != nil {
		t.Fatal(err)
	}
	keyID := testKeys(t).ID()
	if !strings.Contains(raw, "\nm\n"+keyID) {
		t.Errorf("the raw inbox entry does not start with the key id %s:\n%q", keyID, raw)
	}
	// Wait until the recordings hold the control message, the last thing
	// sent, before reading them.
	var seen map[string][]byte
	deadline := time.Now().Add(5 * time.Second)
	for {
		seen = map[string][]byte{"the inbox (XRANGE)": []byte(raw), "the metadata (HGETALL)": []byte(rawMeta), "MONITOR": monitor.Bytes(), "PSUBSCRIBE t:*": channels.Bytes()}
		if bytes.Contains(seen["PSUBSCRIBE t:*"], []byte("t:n:a")) && bytes.Count(seen["PSUBSCRIBE t:*"], []byte("pmessage")) >= 2 &&
			bytes.Contains(seen["MONITOR"], []byte("PUBLISH")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recordings never saw the doorbell and the control message:\n%q\n%q", seen["PSUBSCRIBE t:*"], seen["MONITOR"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	// JSON carries the body as base64: neither form may show.
	bodyB64 := base64.StdEncoding.EncodeToString(body)
	for where, b := range seen {
		for _, secret := range []string{auth, "auth-secret", text, push, user, "bridge-secret", "tools/call", "Authorization", bodyB64[:40]} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s shows %q in clear", where, secret)
			}
		}
	}
	// The metadata the scripts read stays readable.
	if !bytes.Contains(seen["MONITOR"], []byte("alice")) || !bytes.Contains(seen["PSUBSCRIBE t:*"], []byte("s-1")) {
		t.Error("the identity and session id no longer cross Redis readable: the scripts need them")
	}
}

// Rotation: an instance with the new secret current and the old one
// previous opens what the old one sealed; one without the new secret
// reads nothing of what the new one sealed, drops it, and says which key
// it lacks.
func TestRotatedSecrets(t *testing.T) {
	const newSecret = "bmV3IHNlY3JldCBvZiB0aGUgcm90YXRpb24gdGVzdCE="
	r := redistest.Start(t)
	a, _ := open(t, r, "a")
	rotated, err := cluster.NewKeyring(newSecret, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var unreadable []string
	b, _ := openWith(t, r, cluster.Config{Instance: "b", Keys: rotated, Unreadable: func(what, keyID string) {
		mu.Lock()
		unreadable = append(unreadable, what+" "+keyID)
		mu.Unlock()
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Register(ctx, owned("s-1", "tok-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Post(ctx, "s-1", "alice", "s1", &cluster.Posted{Body: []byte(`"old"`)}, cluster.Load{Work: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Post(ctx, "s-1", "alice", "s1", &cluster.Posted{Body: []byte(`"new"`)}, cluster.Load{Work: 1}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Pending(ctx, "s-1", "", 10)
	if err != nil || len(got) != 2 || string(got[0].Body) != `"old"` || string(got[1].Body) != `"new"` {
		t.Errorf("the rotated instance reads %+v %v, want both entries", got, err)
	}
	// a has only the old secret; b's unreadable hook is not a's, so read
	// through a node that reports.
	var aUnreadable []string
	a2, _ := openWith(t, r, cluster.Config{Instance: "a2", Keys: testKeys(t), Unreadable: func(what, keyID string) {
		mu.Lock()
		aUnreadable = append(aUnreadable, what+" "+keyID)
		mu.Unlock()
	}})
	got, err = a2.Pending(ctx, "s-1", "", 10)
	if err != nil || len(got) != 2 || string(got[0].Body) != `"old"` || got[1].Body != nil || got[1].ID == "" {
		t.Errorf("the old instance reads %+v %v, want the old entry and the new one's place, empty", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "inbox entry " + rotated.ID(); len(aUnreadable) != 1 || aUnreadable[0] != want {
		t.Errorf("the old instance reported %q, want [%q]", aUnreadable, want)
	}
	if len(unreadable) != 0 {
		t.Errorf("the rotated instance reported %q unreadable", unreadable)
	}
}

// Cluster mode without a secret does not start.
func TestOpenNeedsASecret(t *testing.T) {
	if _, err := cluster.Open(cluster.Config{URL: "redis://127.0.0.1:1/0"}, newEvents()); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Errorf("Open without keys: %v, want an error about the secret", err)
	}
}
