package generation

// Subscriptions: the sessionless revision has no resources/subscribe and
// no standalone stream; a client asks for the notifications it wants on a
// subscriptions/listen request, whose response stream carries them. The
// bridge answers a legacy client's resources/subscribe itself, keeps the
// set, and holds one listen stream per session asking for it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Bounds of one session's subscriptions: how many URIs, and their bytes.
const (
	MaxSubscriptions     = 256
	MaxSubscriptionBytes = 64 << 10
)

// ErrTooManySubscriptions refuses a subscription past the bounds.
var ErrTooManySubscriptions = fmt.Errorf("too many subscriptions (at most %d URIs, %d bytes)", MaxSubscriptions, MaxSubscriptionBytes)

// Subscribe adds uri to the session's subscriptions; changed says whether
// it was new (and the listen stream must be opened again).
func (s *Session) Subscribe(uri string) (changed bool, err error) {
	if uri == "" {
		return false, errors.New("params.uri is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.subs, uri) {
		return false, nil
	}
	if len(s.subs) >= MaxSubscriptions || s.subBytes+len(uri) > MaxSubscriptionBytes {
		return false, ErrTooManySubscriptions
	}
	s.subs = append(s.subs, uri)
	s.subBytes += len(uri)
	s.signalChange()
	return true, nil
}

// Unsubscribe removes uri; changed says whether it was there.
func (s *Session) Unsubscribe(uri string) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.subs, uri)
	if i < 0 {
		return false
	}
	s.subs = slices.Delete(s.subs, i, i+1)
	s.subBytes -= len(uri)
	s.signalChange()
	return true
}

// signalChange wakes the listen stream's holder; s.mu is held.
func (s *Session) signalChange() {
	select {
	case s.changed <- struct{}{}:
	default: // a change is pending already
	}
}

// Changed receives when the subscriptions changed since it last did.
func (s *Session) Changed() <-chan struct{} { return s.changed }

// ListenRequest is the subscriptions/listen request for the session now:
// the list changes the server advertises (capabilities.*.listChanged) and
// the subscribed URIs, with the client's _meta.
func (s *Session) ListenRequest(id json.RawMessage) json.RawMessage {
	var caps struct {
		Tools, Prompts, Resources struct {
			ListChanged bool `json:"listChanged"`
		}
	}
	_ = json.Unmarshal(s.Discovery.Capabilities, &caps)
	s.mu.Lock()
	notes := map[string]any{
		"toolsListChanged":     caps.Tools.ListChanged,
		"promptsListChanged":   caps.Prompts.ListChanged,
		"resourcesListChanged": caps.Resources.ListChanged,
	}
	if len(s.subs) > 0 {
		notes["resourceSubscriptions"] = slices.Clone(s.subs)
	}
	s.mu.Unlock()
	p, _ := marshal(map[string]any{"notifications": notes})
	raw, _ := marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": json.RawMessage(p)})
	out, err := Request(raw, nil, s.Meta(), nil)
	if err != nil { // not reached: raw is an object with object params
		panic(err)
	}
	return out
}

// ListenNotification prepares a notification from the listen stream for a
// legacy client: without the subscription's _meta (nor an empty _meta
// left behind). The stream's own acknowledgement is not for the client
// (relay false).
func ListenNotification(msg json.RawMessage) (out json.RawMessage, relay bool) {
	var env map[string]json.RawMessage
	if json.Unmarshal(msg, &env) != nil {
		return nil, false
	}
	var method string
	_ = json.Unmarshal(env["method"], &method)
	if method == "" || method == "notifications/subscriptions/acknowledged" {
		return nil, false
	}
	var params map[string]json.RawMessage
	if json.Unmarshal(env["params"], &params) != nil || params == nil {
		return msg, true
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(params["_meta"], &meta) != nil || meta == nil {
		return msg, true
	}
	if _, ok := meta[MetaSubscriptionID]; !ok {
		return msg, true
	}
	delete(meta, MetaSubscriptionID)
	if len(meta) == 0 {
		delete(params, "_meta")
	} else {
		params["_meta"], _ = marshal(meta)
	}
	env["params"], _ = marshal(params)
	out, err := marshal(env)
	if err != nil {
		return msg, true
	}
	return out, true
}
