package generation

import (
	"encoding/json"
	"fmt"
	"slices"
)

// DiscoverID is the id of the bridge's own server/discover probe.
const DiscoverID = `"caddy-mcp-sse-discover"`

// DiscoverRequest is the probe the bridge sends for a client that
// initializes: server/discover with the client's info and capabilities in
// _meta, as a client of the sessionless revision would send it.
func DiscoverRequest(c Client) json.RawMessage {
	raw := json.RawMessage(`{"jsonrpc":"2.0","id":` + DiscoverID + `,"method":"server/discover","params":{}}`)
	out, err := Request(raw, nil, Meta{Client: c}, nil)
	if err != nil { // not reached: raw is an object with object params
		panic(err)
	}
	return out
}

// ProbeClient is the client the bridge's probe names when it must not
// depend on what a client said of itself: its own name, no capabilities.
var ProbeClient = Client{
	Info:         json.RawMessage(`{"name":"caddy-mcp-sse","version":"0"}`),
	Capabilities: json.RawMessage(`{}`),
}

// Discovery is what a modern server said of itself in its answer to
// server/discover.
type Discovery struct {
	SupportedVersions []string        `json:"supportedVersions"`
	Capabilities      json.RawMessage `json:"capabilities"`
	Instructions      string          `json:"instructions,omitempty"`
	Meta              struct {
		ServerInfo json.RawMessage `json:"io.modelcontextprotocol/serverInfo"`
	} `json:"_meta"`
}

// Verdict judges the answer to the probe, as the revision's Backward
// Compatibility section tells a dual-era client to: a result that lists
// the modern version, or a recognized modern error (-32022, listing the
// versions the server supports, the modern one among them), identifies a
// modern server; anything else (no JSON-RPC answer, -32601, a result
// without the modern version, as a stateful server gives) a legacy one.
// answer is the JSON-RPC response to the probe, nil if none came.
func Verdict(answer json.RawMessage) (modern bool, d Discovery) {
	var res struct {
		Result *Discovery `json:"result"`
		Error  *struct {
			Code int `json:"code"`
			Data struct {
				Supported []string `json:"supported"`
			} `json:"data"`
		} `json:"error"`
	}
	if answer == nil || json.Unmarshal(answer, &res) != nil {
		return false, d
	}
	switch {
	case res.Result != nil:
		return slices.Contains(res.Result.SupportedVersions, Modern), *res.Result
	case res.Error != nil && res.Error.Code == CodeUnsupportedProtocolVersion:
		return slices.Contains(res.Error.Data.Supported, Modern), d
	}
	return false, d
}

// ServedVersions are the legacy revisions the bridge answers an
// initialize with, newest first.
var ServedVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// InitializeResult is the bridge's own answer to a legacy client's
// initialize on the modern path: the client's version when the bridge
// serves it (else the newest it does), the server's capabilities,
// serverInfo and instructions from its discover result.
func InitializeResult(id json.RawMessage, clientVersion string, d Discovery) json.RawMessage {
	version := ServedVersions[0]
	if slices.Contains(ServedVersions, clientVersion) {
		version = clientVersion
	}
	res := map[string]any{
		"protocolVersion": version,
		"capabilities":    orEmpty(d.Capabilities),
		"serverInfo":      json.RawMessage(`{"name":"unknown","version":"0"}`),
	}
	if isObject(d.Meta.ServerInfo) {
		res["serverInfo"] = d.Meta.ServerInfo
	}
	if d.Instructions != "" {
		res["instructions"] = d.Instructions
	}
	return Response(id, res)
}

// Response is a JSON-RPC result message.
func Response(id json.RawMessage, result any) json.RawMessage {
	out, err := marshal(map[string]any{"jsonrpc": "2.0", "id": id, "result": result})
	if err != nil {
		panic(fmt.Sprintf("generation: marshaling a result: %v", err))
	}
	return out
}

func orEmpty(v json.RawMessage) json.RawMessage {
	if !isObject(v) {
		return json.RawMessage(`{}`)
	}
	return v
}
