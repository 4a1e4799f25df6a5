package generation

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/mcpsse/caddy-mcp-sse/internal/jsonscan"
)

// Client is what a legacy client said of itself in its initialize, kept
// for the _meta of every request the bridge sends for it.
type Client struct {
	// ProtocolVersion is the version the client asked for.
	ProtocolVersion string
	// Info and Capabilities are params.clientInfo and params.capabilities
	// as the client sent them.
	Info         json.RawMessage
	Capabilities json.RawMessage
}

// ParseInitialize reads the client's initialize params.
func ParseInitialize(params json.RawMessage) (Client, error) {
	var p struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		ClientInfo      json.RawMessage `json:"clientInfo"`
	}
	if len(params) == 0 {
		return Client{}, errors.New("initialize without params")
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return Client{}, err
	}
	c := Client{ProtocolVersion: p.ProtocolVersion, Info: p.ClientInfo, Capabilities: ModernCapabilities(p.Capabilities)}
	if !isObject(c.Info) {
		c.Info = json.RawMessage(`{"name":"unknown","version":"0"}`)
	}
	return c, nil
}

// ModernCapabilities gives a legacy client's capabilities in the shape of
// the sessionless revision. The members are the same; what differs is
// what an empty elicitation meant: 2025-06-18 clients declared form
// elicitation as "elicitation": {}, which the later revisions spell
// {"form": {}}. Anything that is not an object becomes {}.
func ModernCapabilities(caps json.RawMessage) json.RawMessage {
	if !isObject(caps) {
		return json.RawMessage(`{}`)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(caps, &m) != nil {
		return json.RawMessage(`{}`)
	}
	if e, ok := m["elicitation"]; ok && isEmptyObject(e) {
		m["elicitation"] = json.RawMessage(`{"form":{}}`)
		out, _ := marshal(m)
		return out
	}
	return caps
}

// Declares reports whether capabilities (an object) declare the
// capability named by key ("elicitation", "sampling", "roots").
func Declares(capabilities json.RawMessage, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(capabilities, &m) != nil {
		return false
	}
	v, ok := m[key]
	return ok && isObject(v)
}

var modernJSON = json.RawMessage(`"` + Modern + `"`)

// Meta is the _meta the bridge puts in every request it sends for a
// client.
type Meta struct {
	Client
	// LogLevel is what the client's last logging/setLevel asked for; ""
	// until it sent one.
	LogLevel string
	// encoded is members() as a JSON object, made once for the many
	// requests of a session (Session.Meta); nil: made per request.
	encoded json.RawMessage
}

// object is the _meta members as a JSON object.
func (m Meta) object() json.RawMessage {
	if m.encoded != nil {
		return m.encoded
	}
	return object(m.members())
}

// members are the _meta members Meta sets.
func (m Meta) members() map[string]json.RawMessage {
	out := map[string]json.RawMessage{
		MetaProtocolVersion:    modernJSON,
		MetaClientInfo:         m.Info,
		MetaClientCapabilities: m.Capabilities,
	}
	if m.LogLevel != "" {
		l, _ := marshal(m.LogLevel)
		out[MetaLogLevel] = l
	}
	return out
}

// Request rewrites a client's request for the upstream: id replaced,
// params._meta given the members of meta (over any the client set, its
// other members kept: progressToken above all), and each of set put in
// params (a nil value removes the member). The client's params are
// otherwise kept as they were, member by member.
func Request(raw, id json.RawMessage, meta Meta, set map[string]json.RawMessage) (json.RawMessage, error) {
	if out, ok := requestFast(raw, id, meta, set); ok {
		return out, nil
	}
	return requestSlow(raw, id, meta, set)
}

// requestSlow is Request through maps, for any shape.
func requestSlow(raw, id json.RawMessage, meta Meta, set map[string]json.RawMessage) (json.RawMessage, error) {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msg); err != nil {
		return nil, err
	}
	params := map[string]json.RawMessage{}
	if p, ok := msg["params"]; ok && !isNull(p) {
		if err := json.Unmarshal(p, &params); err != nil {
			return nil, errors.New("params is not an object")
		}
	}
	if old, ok := params["_meta"]; ok && !isNull(old) {
		m := map[string]json.RawMessage{}
		if err := json.Unmarshal(old, &m); err != nil {
			return nil, errors.New("params._meta is not an object")
		}
		for k, v := range meta.members() {
			m[k] = v
		}
		params["_meta"] = object(m)
	} else {
		params["_meta"] = meta.object()
	}
	for k, v := range set {
		if v == nil {
			delete(params, k)
		} else {
			params[k] = v
		}
	}
	msg["params"] = object(params)
	if id != nil {
		msg["id"] = id
	}
	return object(msg), nil
}

func isObject(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '{' && json.Valid(v)
}

func isEmptyObject(v json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(v, &m) == nil && m != nil && len(m) == 0
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// LogLevels are the levels logging/setLevel may ask for (RFC 5424's, as
// the protocol names them).
var LogLevels = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

// ValidLogLevel reports whether level is one of LogLevels: anything else
// is refused, as a server of the client's own revision would, rather than
// carried in the _meta of every request the bridge sends.
func ValidLogLevel(level string) bool { return slices.Contains(LogLevels, level) }

// requestFast is Request by splicing the members of a valid message, the
// client's bytes kept as they came. ok is false for a shape it leaves to
// requestSlow: params or _meta not an object, a client _meta that sets
// one of the bridge's own members, keys written with escapes.
func requestFast(raw, id json.RawMessage, meta Meta, set map[string]json.RawMessage) (json.RawMessage, bool) {
	top, ok := jsonscan.Members(raw, maxScanned)
	if !ok {
		return nil, false
	}
	var params []jsonscan.Member
	var paramsObj []byte
	if p := jsonscan.Find(top, "params"); p != nil && !isNull(p.Value) {
		if params, ok = jsonscan.Members(p.Value, maxScanned); !ok {
			return nil, false
		}
		paramsObj = p.Value
	}
	metaObj := meta.object()
	if cm := jsonscan.Find(params, "_meta"); cm != nil && !isNull(cm.Value) {
		inner, ok := jsonscan.Members(cm.Value, maxScanned)
		if !ok {
			return nil, false
		}
		for _, m := range inner {
			if strings.HasPrefix(m.Key, metaPrefix) {
				return nil, false // the bridge's members go over the client's: merge them
			}
		}
		if len(inner) > 0 {
			merged := make([]byte, 0, len(metaObj)+len(cm.Value))
			merged = append(merged, metaObj[:len(metaObj)-1]...)
			merged = append(merged, ',')
			merged = append(merged, cm.Value[jsonscan.SkipSpace(cm.Value, 1):]...)
			metaObj = merged
		}
	}
	setKeys := make([]string, 0, len(set))
	for k := range set {
		setKeys = append(setKeys, k)
	}
	slices.Sort(setKeys)

	n := len(raw) + len(metaObj) + len(id) + 32
	for _, v := range set {
		n += len(v) + 32
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	for _, m := range top {
		if m.Key == "params" || (m.Key == "id" && id != nil) {
			continue
		}
		out = append(out, raw[m.Start:m.End]...)
		out = append(out, ',')
	}
	if id != nil {
		out = append(out, `"id":`...)
		out = append(out, id...)
		out = append(out, ',')
	}
	out = append(out, `"params":{`...)
	for _, m := range params {
		if _, replaced := set[m.Key]; replaced || m.Key == "_meta" {
			continue
		}
		out = append(out, paramsObj[m.Start:m.End]...)
		out = append(out, ',')
	}
	out = append(out, `"_meta":`...)
	out = append(out, metaObj...)
	for _, k := range setKeys {
		if v := set[k]; v != nil {
			out = append(out, ',')
			out = appendKey(out, k)
			out = append(out, ':')
			out = append(out, v...)
		}
	}
	return append(out, "}}"...), true
}
