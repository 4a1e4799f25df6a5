package mcpsse_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

// TestResumeCookieHTTPS: on https the resume cookie is
// __Host-mcp_sse_resume (Secure, Path /, no Domain), which a browser
// takes from this host only; a GET re-attaches by that name and not by
// the bare mcp_sse_resume, which a sibling subdomain could have set for
// the parent domain.
func TestResumeCookieHTTPS(t *testing.T) {
	certFile, keyFile := tlsFiles(t)
	// Caddy keeps its data (and would keep a CA) in the data directory.
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	up := httptest.NewServer(demo.Handler())
	t.Cleanup(up.Close)
	tc := &testCaddy{t: t, logFile: filepath.Join(t.TempDir(), "caddy.log"), port: freePort(t), adminPort: freePort(t)}
	tc.base = "https://127.0.0.1:" + tc.port
	loadCaddyfile(t, strings.NewReplacer("{cert}", certFile, "{key}", keyFile, "{admin}", tc.adminPort, "{port}", tc.port, "{log}", tc.logFile,
		"{upstream}", strings.TrimPrefix(up.URL, "http://")).Replace(`{
	admin 127.0.0.1:{admin}
	persist_config off
	skip_install_trust
	default_sni 127.0.0.1
	log {
		output file {log}
		format json
		level DEBUG
	}
}

https://127.0.0.1:{port} {
	bind 127.0.0.1
	tls {cert} {key}
	mcp_sse
	reverse_proxy {upstream} {
		rewrite /mcp
	}
}
`))
	client := &http.Client{Transport: &http.Transport{
		// The certificate is self-signed, made for this test (tlsFiles).
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	// Wait until the site answers.
	eventually(t, 10*time.Second, "the TLS site answering", func() bool {
		resp, err := client.Get(tc.base + "/nothing-here")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	c1 := tc.openStreamVia(t, client, nil)
	var cookie *http.Cookie
	for _, ck := range c1.resp.Cookies() {
		if strings.HasSuffix(ck.Name, "mcp_sse_resume") {
			if cookie != nil {
				t.Fatalf("two resume cookies set: %v", c1.resp.Header["Set-Cookie"])
			}
			cookie = ck
		}
	}
	if cookie == nil || cookie.Name != "__Host-mcp_sse_resume" || !cookie.Secure || cookie.Path != "/" || cookie.Domain != "" ||
		!cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("resume cookie on https: %v, want __Host-mcp_sse_resume; Secure; Path=/; no Domain; HttpOnly; SameSite=Strict", c1.resp.Header["Set-Cookie"])
	}
	if cookie.Value != c1.token() {
		t.Fatal("the cookie does not carry the resume token")
	}
	c1.close()
	waitDetached(t, tc, 1)

	// The bare name, as a sibling subdomain would plant it, proves nothing.
	planted := tc.openStreamVia(t, client, http.Header{"Cookie": {"mcp_sse_resume=" + cookie.Value}})
	if planted.endpoint == c1.endpoint {
		t.Fatal("a GET re-attached by the bare mcp_sse_resume cookie on https")
	}
	planted.close()
	waitDetached(t, tc, 2)

	c2 := tc.openStreamVia(t, client, http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}})
	if c2.endpoint != c1.endpoint {
		t.Fatalf("re-attached by %s to %s, want %s", cookie.Name, c2.endpoint, c1.endpoint)
	}
	renewed := false
	for _, ck := range c2.resp.Cookies() {
		renewed = renewed || (ck.Name == "__Host-mcp_sse_resume" && ck.Value == c2.token() && ck.Value != cookie.Value)
	}
	if !renewed {
		t.Errorf("the re-attached stream did not set __Host-mcp_sse_resume with the new token: %v", c2.resp.Header["Set-Cookie"])
	}
}

// TestResumeCookieHTTPName: on plain http the cookie keeps its bare name
// (a browser refuses __Host- without Secure, and sends no Secure cookie
// over http), and a GET re-attaches by that name only.
func TestResumeCookieHTTPName(t *testing.T) {
	tc := startCaddy(t, "")
	c1 := tc.openStream(t)
	var names []string
	for _, ck := range c1.resp.Cookies() {
		names = append(names, ck.Name)
	}
	if len(names) != 1 || names[0] != "mcp_sse_resume" {
		t.Fatalf("cookies set on http: %v, want mcp_sse_resume only", c1.resp.Header["Set-Cookie"])
	}
	c1.close()
	waitDetached(t, tc, 1)

	other := tc.openStreamWith(t, http.Header{"Cookie": {"__Host-mcp_sse_resume=" + c1.token()}})
	if other.endpoint == c1.endpoint {
		t.Fatal("a GET over http re-attached by __Host-mcp_sse_resume")
	}
	other.close()
	waitDetached(t, tc, 2)

	c2 := tc.openStreamWith(t, http.Header{"Cookie": {"mcp_sse_resume=" + c1.token()}})
	if c2.endpoint != c1.endpoint {
		t.Fatalf("re-attached by mcp_sse_resume to %s, want %s", c2.endpoint, c1.endpoint)
	}
}
