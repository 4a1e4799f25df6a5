package mcpstdio

import (
	"net/http"
	"regexp"
	"slices"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/generation"
)

// protocolVersions are the revisions of MCP whose requests may carry
// Mcp-Protocol-Version: the Streamable HTTP revisions this handler
// serves, 2024-11-05, which mcp_sse's dispatch names for its HTTP+SSE
// clients, and the sessionless 2026-07-28.
var protocolVersions = []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", generation.Modern}

var versionShape = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// checkProtocolVersion applies the transport's rule on
// Mcp-Protocol-Version: a request without it is taken (as 2025-03-26, or
// an initialize, which negotiates its version in the body), one naming a
// version the server does not support is refused with 400 and -32022,
// listing those it does.
func checkProtocolVersion(r *http.Request) (string, *generation.ProtocolError) {
	values := r.Header.Values(dispatch.HeaderProtocolVersion)
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1 || !versionShape.MatchString(values[0]):
		return "", &generation.ProtocolError{Code: dispatch.CodeInvalidRequest,
			Message: "malformed Mcp-Protocol-Version header: want one revision such as 2025-06-18"}
	case !slices.Contains(protocolVersions, values[0]):
		return "", generation.UnsupportedVersion(values[0], discoverVersions)
	}
	return values[0], nil
}
