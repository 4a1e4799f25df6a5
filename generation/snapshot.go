package generation

import (
	"encoding/json"
	"slices"
)

// snapshot is what moves with a session to another instance (cluster
// mode): what the client declared, its log level and subscriptions, and
// what the server said in server/discover. Input rounds in progress do
// not move: they live with the request that awaits them.
type snapshot struct {
	ProtocolVersion string          `json:"v"`
	Info            json.RawMessage `json:"i"`
	Capabilities    json.RawMessage `json:"c"`
	LogLevel        string          `json:"l,omitempty"`
	Subscriptions   []string        `json:"s,omitempty"`
	Discovery       Discovery       `json:"d"`
}

// Snapshot is the session's state as another instance restores it.
func (s *Session) Snapshot() string {
	s.mu.Lock()
	snap := snapshot{
		ProtocolVersion: s.client.ProtocolVersion, Info: s.client.Info, Capabilities: s.client.Capabilities,
		LogLevel: s.logLevel, Subscriptions: slices.Clone(s.subs), Discovery: s.Discovery,
	}
	s.mu.Unlock()
	b, _ := marshal(snap)
	return string(b)
}

// Restore rebuilds a session from its Snapshot.
func Restore(snap string) (*Session, error) {
	var v snapshot
	if err := json.Unmarshal([]byte(snap), &v); err != nil {
		return nil, err
	}
	c := Client{ProtocolVersion: v.ProtocolVersion, Info: v.Info, Capabilities: ModernCapabilities(v.Capabilities)}
	if !isObject(c.Info) {
		c.Info = json.RawMessage(`{"name":"unknown","version":"0"}`)
	}
	s := NewSession(c, v.Discovery)
	s.logLevel = v.LogLevel
	for _, uri := range v.Subscriptions {
		if _, err := s.Subscribe(uri); err != nil {
			break // past the bounds: the rest is not kept
		}
	}
	// Restored subscriptions are the listen stream's first request, not a
	// change to it.
	select {
	case <-s.changed:
	default:
	}
	return s, nil
}
