// Package generation translates between the MCP generations a bridge
// meets: a client of a session-based revision (HTTP+SSE 2024-11-05,
// Streamable HTTP up to 2025-11-25) and a sessionless 2026-07-28 server.
// It holds what the legacy side said once (initialize, logging/setLevel,
// resources/subscribe) and the modern side wants on every request (the
// _meta keys, the Mcp-* headers), rewrites requests and results as raw
// JSON, and keeps the per-session state of the multi-round-trip requests
// (MRTR) and subscriptions. It knows nothing of Caddy or HTTP servers:
// each piece takes JSON in and gives JSON out.
package generation

import (
	"bytes"
	"encoding/json"
)

// Modern is the sessionless revision this package speaks upstream.
const Modern = "2026-07-28"

// The _meta keys of the sessionless revision.
const (
	MetaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	MetaClientInfo         = "io.modelcontextprotocol/clientInfo"
	MetaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	MetaLogLevel           = "io.modelcontextprotocol/logLevel"
	MetaServerInfo         = "io.modelcontextprotocol/serverInfo"
	MetaSubscriptionID     = "io.modelcontextprotocol/subscriptionId"
)

// JSON-RPC error codes of the sessionless revision.
const (
	CodeUnsupportedProtocolVersion = -32022
	CodeMissingClientCapability    = -32021
	CodeHeaderMismatch             = -32020
)

// marshal is json.Marshal without HTML escaping: what passes through the
// bridge (a requestState above all) keeps its bytes, not only its value.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
