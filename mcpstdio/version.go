package mcpstdio

import (
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
)

// protocolVersions are the revisions of MCP whose requests may carry
// Mcp-Protocol-Version: the Streamable HTTP revisions this handler
// serves, and 2024-11-05, which mcp_sse's dispatch names for its HTTP+SSE
// clients.
var protocolVersions = []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}

var versionShape = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// checkProtocolVersion applies the transport's rule on
// Mcp-Protocol-Version: a request without it is taken (as 2025-03-26, or
// an initialize, which negotiates its version in the body), one naming a
// version the server does not support is refused with 400. It returns the
// message of that 400.
func checkProtocolVersion(r *http.Request) (string, bool) {
	values := r.Header.Values(dispatch.HeaderProtocolVersion)
	switch {
	case len(values) == 0:
		return "", true
	case len(values) > 1 || !versionShape.MatchString(values[0]):
		return "malformed Mcp-Protocol-Version header: want one revision such as 2025-06-18", false
	case !slices.Contains(protocolVersions, values[0]):
		return "unsupported Mcp-Protocol-Version " + values[0] + ": supported are " + strings.Join(protocolVersions, ", "), false
	}
	return "", true
}
