package mcpsse_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

// TestMaxSessionsPerClientIPv6Prefix: per-client limits count an IPv6
// client by its /64, so one host cannot take every slot by walking the
// addresses of its prefix. The client address comes from X-Forwarded-For,
// which Caddy trusts from loopback here.
func TestMaxSessionsPerClientIPv6Prefix(t *testing.T) {
	up := httptest.NewServer(demo.Handler())
	t.Cleanup(up.Close)
	port := freePort(t)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	servers {
		trusted_proxies static 127.0.0.1/32
		client_ip_headers X-Forwarded-For
	}
}

http://127.0.0.1:%s {
	bind 127.0.0.1
	mcp_sse {
		max_sessions_per_client 1
		resume_window off
	}
	reverse_proxy %s {
		rewrite /mcp
	}
}
`, port, strings.TrimPrefix(up.URL, "http://")))
	tc := &testCaddy{t: t, base: "http://127.0.0.1:" + port}
	from := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }

	tc.openStreamWith(t, from("2001:db8:0:1::1"))
	req, _ := http.NewRequest(http.MethodGet, tc.base+"/sse", nil)
	req.Header = from("2001:db8:0:1::2")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a second stream from another address of the same /64: %s, want 503", resp.Status)
	}
	// Another /64 is another client.
	tc.openStreamWith(t, from("2001:db8:0:2::1"))
}
