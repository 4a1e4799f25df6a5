package dispatch

import (
	"encoding/json"
	"slices"
)

// CodeUnsupportedProtocolVersion is the JSON-RPC error the sessionless
// revisions (2026-07-28 on) answer a request for a version the server does
// not serve with.
const CodeUnsupportedProtocolVersion = -32022

// discoverAnswer reviews the upstream's result for a server/discover
// request. Clients of the sessionless revisions probe with server/discover
// before falling back to initialize. A stateful upstream (the Go SDK's
// StreamableHTTPHandler, for one) answers the probe with a result whose
// supportedVersions leave out the version asked for, and some clients
// (mcp-go) take any result as "this server is sessionless" and fail on
// their next request. Stated as the error the revision defines for it,
// the same answer makes every client fall back to initialize.
//
// It returns the replacement message and true when the result does not
// serve the requested version.
func discoverAnswer(msg *Message, result json.RawMessage) (json.RawMessage, bool) {
	if msg.Method != "server/discover" || msg.ProtocolVersion == "" {
		return nil, false
	}
	var res struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	if json.Unmarshal(result, &res) != nil || res.SupportedVersions == nil ||
		slices.Contains(res.SupportedVersions, msg.ProtocolVersion) {
		return nil, false
	}
	data := map[string]any{"supported": res.SupportedVersions, "requested": msg.ProtocolVersion}
	return ErrorResponse(msg.ID, CodeUnsupportedProtocolVersion, "unsupported protocol version", data), true
}
