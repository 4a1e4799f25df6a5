package generation

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestListenRequestAndSubscriptions(t *testing.T) {
	s := NewSession(Client{Info: json.RawMessage(`{"name":"c"}`), Capabilities: json.RawMessage(`{}`)},
		Discovery{Capabilities: json.RawMessage(`{"tools":{"listChanged":true},"resources":{"subscribe":true}}`)})
	got := s.ListenRequest(json.RawMessage(`"l1"`))
	want := `{"id":"l1","jsonrpc":"2.0","method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"c"},"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"notifications":{"promptsListChanged":false,"resourcesListChanged":false,"toolsListChanged":true}}}`
	if !sameJSON(got, []byte(want)) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if changed, err := s.Subscribe("test://a"); !changed || err != nil {
		t.Fatal(changed, err)
	}
	select {
	case <-s.Changed():
	default:
		t.Fatal("no change signalled")
	}
	if changed, _ := s.Subscribe("test://a"); changed {
		t.Error("a repeated subscription changed the set")
	}
	if !strings.Contains(string(s.ListenRequest(json.RawMessage(`1`))), `"resourceSubscriptions":["test://a"]`) {
		t.Error("subscription not asked for")
	}
	if !s.Unsubscribe("test://a") || s.Unsubscribe("test://a") {
		t.Error("Unsubscribe")
	}
	if _, err := s.Subscribe(""); err == nil {
		t.Error("empty uri taken")
	}
	// Bounded in count and in bytes.
	for i := 0; ; i++ {
		if _, err := s.Subscribe("u" + strings.Repeat("x", i)); err != nil {
			if i != MaxSubscriptions {
				t.Errorf("refused at %d, want %d", i, MaxSubscriptions)
			}
			break
		}
	}
	b := NewSession(Client{}, Discovery{})
	big := strings.Repeat("y", MaxSubscriptionBytes/2)
	if _, err := b.Subscribe(big + "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(big + "2"); err != ErrTooManySubscriptions {
		t.Errorf("past the byte bound: %v", err)
	}
}

func TestListenNotification(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{`{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"u","_meta":{"io.modelcontextprotocol/subscriptionId":"s1"}}}`,
			`{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"u"}}`},
		{`{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":1,"k":"<v>"}}}`,
			`{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"k":"<v>"}}}`},
		{`{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`, `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`},
		{`{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{}}`, ``},
		{`{"jsonrpc":"2.0","id":1,"result":{}}`, ``},
	} {
		out, ok := ListenNotification(json.RawMessage(c.in))
		if ok != (c.out != "") || (ok && string(out) != c.out) {
			t.Errorf("%s:\n got %s %v\nwant %s", c.in, out, ok, c.out)
		}
	}
}
