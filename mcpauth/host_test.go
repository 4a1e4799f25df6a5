package mcpauth_test

import (
	"net/http"
	"testing"

	"github.com/mcpsse/caddy-mcp-sse/internal/authservertest"
	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
)

// withHost is a request header of a token, sent with the Host host.
func withHost(tok, host string) http.Header {
	h := bearer(tok)
	h.Set("Host", host)
	return h
}

// TestAuthHostPortNamesAnotherServer: the attack is a token the
// authorization server issued for another server on the same host name
// (another port), sent here with that server's port in Host; Caddy's host
// matcher ignores the port, so the site takes the request. The resource
// is not built from a port the connection did not come in on: refused,
// 421, for the token and for the metadata alike. Host without a port
// (the scheme's default, another server again) likewise.
func TestAuthHostPortNamesAnotherServer(t *testing.T) {
	e := start(t, "")
	other := "127.0.0.1:" + testport.Free(t)
	for _, host := range []string{other, "127.0.0.1"} {
		tok := e.as.Token(authservertest.Client, "http://"+host+"/", "mcp:tools")
		if r := e.do(http.MethodGet, "/headers", withHost(tok, host), "", false); r.status != http.StatusMisdirectedRequest {
			t.Errorf("a token for http://%s with Host %s: %d %s, want 421", host, host, r.status, r.body)
		}
		md := e.do(http.MethodGet, "/.well-known/oauth-protected-resource", http.Header{"Host": {host}}, "", false)
		if md.status != http.StatusMisdirectedRequest {
			t.Errorf("the metadata with Host %s: %d %s, want 421", host, md.status, md.body)
		}
	}
	if r := e.do(http.MethodGet, "/headers", bearer(e.token("mcp:tools")), "", false); r.status != http.StatusOK {
		t.Errorf("this resource's own token: %d %s", r.status, r.body)
	}
}

// TestAuthCatchAllSiteHost: on a site that answers for any host (no host
// in its address) and no resource set, the attack is a token for
// another resource of the same authorization server sent with that
// resource's host in Host. Only a host that names this very listener (a
// loopback name on a loopback connection, the listener's own address)
// is taken from the client; a trusted proxy's X-Forwarded-Host is taken
// as before.
func TestAuthCatchAllSiteHost(t *testing.T) {
	e := startSite(t, authservertest.Start(t), "http://:{port}", "")
	for _, host := range []string{"b.example.com", "b.example.com:" + e.port()} {
		tok := e.as.Token(authservertest.Client, "http://"+host+"/", "mcp:tools")
		if r := e.do(http.MethodGet, "/headers", withHost(tok, host), "", false); r.status != http.StatusMisdirectedRequest {
			t.Errorf("a token for http://%s with Host %s: %d %s, want 421", host, host, r.status, r.body)
		}
	}
	for _, host := range []string{"localhost:" + e.port(), "127.0.0.1:" + e.port()} {
		tok := e.as.Token(authservertest.Client, "http://"+host+"/", "mcp:tools")
		if r := e.do(http.MethodGet, "/headers", withHost(tok, host), "", false); r.status != http.StatusOK {
			t.Errorf("a token for http://%s with Host %s: %d %s, want 200", host, host, r.status, r.body)
		}
	}
	public := e.as.Token(authservertest.Client, "https://mcp.example.com/", "mcp:tools")
	fwd := bearer(public)
	fwd.Set("X-Forwarded-Proto", "https")
	fwd.Set("X-Forwarded-Host", "mcp.example.com")
	if r := e.do(http.MethodGet, "/headers", fwd, "", true); r.status != http.StatusOK {
		t.Errorf("the public resource's token through the trusted proxy: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/headers", fwd, "", false); r.status == http.StatusOK {
		t.Errorf("the public resource's token from an untrusted client: %d", r.status)
	}
}
