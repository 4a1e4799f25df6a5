package generation

// The server's side of subscriptions/listen, for a bridge in front of a
// legacy server: what a listen request asks for, what of it the server can
// give, the acknowledgement that opens the stream, and which of the
// server's notifications the stream carries, tagged with its id.

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Listen is what a subscriptions/listen request asks for, or what the
// bridge agreed to.
type Listen struct {
	ToolsListChanged      bool     `json:"toolsListChanged,omitempty"`
	PromptsListChanged    bool     `json:"promptsListChanged,omitempty"`
	ResourcesListChanged  bool     `json:"resourcesListChanged,omitempty"`
	ResourceSubscriptions []string `json:"resourceSubscriptions,omitempty"`
}

// ParseListen reads params.notifications, within the bounds of one
// session's subscriptions (MaxSubscriptions URIs, MaxSubscriptionBytes).
func ParseListen(params json.RawMessage) (Listen, error) {
	var p struct {
		Notifications *Listen `json:"notifications"`
	}
	if err := json.Unmarshal(params, &p); err != nil || p.Notifications == nil {
		return Listen{}, fmt.Errorf("subscriptions/listen needs params.notifications, an object")
	}
	l := *p.Notifications
	n := 0
	for _, uri := range l.ResourceSubscriptions {
		n += len(uri)
		if uri == "" {
			return Listen{}, fmt.Errorf("resourceSubscriptions holds an empty URI")
		}
	}
	if len(l.ResourceSubscriptions) > MaxSubscriptions || n > MaxSubscriptionBytes {
		return Listen{}, ErrTooManySubscriptions
	}
	slices.Sort(l.ResourceSubscriptions)
	l.ResourceSubscriptions = slices.Compact(l.ResourceSubscriptions)
	return l, nil
}

// Agreed is the part of l a server with capabilities (its initialize
// result's) can give: the list changes it announces, and resource
// subscriptions if it takes resources/subscribe.
func (l Listen) Agreed(capabilities json.RawMessage) Listen {
	var caps struct {
		Tools, Prompts *struct {
			ListChanged bool `json:"listChanged"`
		}
		Resources *struct {
			ListChanged bool `json:"listChanged"`
			Subscribe   bool `json:"subscribe"`
		}
	}
	_ = json.Unmarshal(capabilities, &caps)
	out := Listen{
		ToolsListChanged:     l.ToolsListChanged && caps.Tools != nil && caps.Tools.ListChanged,
		PromptsListChanged:   l.PromptsListChanged && caps.Prompts != nil && caps.Prompts.ListChanged,
		ResourcesListChanged: l.ResourcesListChanged && caps.Resources != nil && caps.Resources.ListChanged,
	}
	if caps.Resources != nil && caps.Resources.Subscribe {
		out.ResourceSubscriptions = l.ResourceSubscriptions
	}
	return out
}

// Wants reports whether a listen stream that agreed to l carries the
// notification method (with params, for resources/updated's uri).
func (l Listen) Wants(method string, params json.RawMessage) bool {
	switch method {
	case "notifications/tools/list_changed":
		return l.ToolsListChanged
	case "notifications/prompts/list_changed":
		return l.PromptsListChanged
	case "notifications/resources/list_changed":
		return l.ResourcesListChanged
	case "notifications/resources/updated":
		var p struct {
			URI string `json:"uri"`
		}
		_ = json.Unmarshal(params, &p)
		return p.URI != "" && slices.Contains(l.ResourceSubscriptions, p.URI)
	}
	return false
}

// Empty reports whether l asks for nothing.
func (l Listen) Empty() bool {
	return !l.ToolsListChanged && !l.PromptsListChanged && !l.ResourcesListChanged && len(l.ResourceSubscriptions) == 0
}

// Acknowledged is the first message of a listen stream: what the bridge
// agreed to, tagged with the listen request's id.
func Acknowledged(subscriptionID json.RawMessage, agreed Listen) json.RawMessage {
	out, _ := marshal(map[string]any{"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
		"params": map[string]any{"notifications": agreed, "_meta": map[string]any{MetaSubscriptionID: subscriptionID}}})
	return out
}

// TagSubscription puts the listen request's id in a notification's
// params._meta, as the revision wants of what a listen stream carries.
func TagSubscription(msg, subscriptionID json.RawMessage) json.RawMessage {
	return SetMeta(msg, MetaSubscriptionID, subscriptionID)
}

// SetMeta sets params._meta[key] of a message to value (nil removes it),
// keeping everything else as it was; a message it cannot read comes back
// unchanged.
func SetMeta(msg json.RawMessage, key string, value json.RawMessage) json.RawMessage {
	return editParams(msg, func(params map[string]json.RawMessage) bool {
		meta := map[string]json.RawMessage{}
		if m, ok := params["_meta"]; ok && !isNull(m) && json.Unmarshal(m, &meta) != nil {
			return false
		}
		if value == nil {
			delete(meta, key)
		} else {
			meta[key] = value
		}
		params["_meta"] = object(meta)
		return true
	})
}

// SetParam sets params[key] of a message to value, keeping the rest; a
// message it cannot read comes back unchanged.
func SetParam(msg json.RawMessage, key string, value json.RawMessage) json.RawMessage {
	return editParams(msg, func(params map[string]json.RawMessage) bool {
		params[key] = value
		return true
	})
}

// editParams decodes a message's params (none or null: empty), lets edit
// change them, and encodes the message again; a message it cannot read,
// or whose edit reports it could not be made, comes back unchanged.
func editParams(msg json.RawMessage, edit func(params map[string]json.RawMessage) bool) json.RawMessage {
	var env map[string]json.RawMessage
	if json.Unmarshal(msg, &env) != nil {
		return msg
	}
	params := map[string]json.RawMessage{}
	if p, ok := env["params"]; ok && !isNull(p) && json.Unmarshal(p, &params) != nil {
		return msg
	}
	if !edit(params) {
		return msg
	}
	env["params"] = object(params)
	return object(env)
}

// WithID gives a message another id, keeping the rest byte for byte.
func WithID(msg, id json.RawMessage) json.RawMessage {
	var env map[string]json.RawMessage
	if json.Unmarshal(msg, &env) != nil {
		return msg
	}
	env["id"] = id
	return object(env)
}
