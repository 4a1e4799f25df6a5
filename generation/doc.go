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
	"slices"
)

// Modern is the sessionless revision this package speaks upstream.
const Modern = "2026-07-28"

// The _meta keys of the sessionless revision.
const (
	metaPrefix             = "io.modelcontextprotocol/"
	MetaProtocolVersion    = metaPrefix + "protocolVersion"
	MetaClientInfo         = metaPrefix + "clientInfo"
	MetaClientCapabilities = metaPrefix + "clientCapabilities"
	MetaLogLevel           = metaPrefix + "logLevel"
	MetaServerInfo         = metaPrefix + "serverInfo"
	MetaSubscriptionID     = metaPrefix + "subscriptionId"
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

// object writes a JSON object of members whose values are already JSON
// (read out of a valid message), in key order, the values verbatim: no
// second scan and re-encoding of what the bridge only passes on.
func object(members map[string]json.RawMessage) []byte {
	keys := make([]string, 0, len(members))
	n := 2
	for k, v := range members {
		keys = append(keys, k)
		n += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKey(b, k)
		b = append(b, ':')
		b = append(b, members[k]...)
	}
	return append(b, '}')
}

// appendKey appends k as a JSON string.
func appendKey(b []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := marshal(k)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"')
}

// maxScanned is the most members a message's objects may have for the
// bridge to splice them (jsonscan.Members); more take the maps.
const maxScanned = 32

// absent reports whether no key or string of msg can decode to lit (ASCII,
// lower case), so that a fast path may skip decoding msg. encoding/json
// matches keys without regard to case (Unicode folding included) and after
// unescaping: a message with an escape \u or a byte outside ASCII is never
// taken to lack lit, nor one holding lit in any case.
func absent(msg []byte, lit string) bool {
	for i, c := range msg {
		if c >= 0x80 || (c == '\\' && i+1 < len(msg) && msg[i+1] == 'u') {
			return false
		}
	}
	for i := 0; i+len(lit) <= len(msg); i++ {
		if equalFoldASCII(msg[i:i+len(lit)], lit) {
			return false
		}
	}
	return true
}

func equalFoldASCII(b []byte, lower string) bool {
	for i := range len(lower) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
