package mcpsse_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	mcpsse "github.com/mcpsse/caddy-mcp-sse"
	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

// TestHTTP2OverTLS: behind HTTPS, clients speak HTTP/2 to Caddy, where
// flushing, write deadlines and noticing a client that left all work
// differently from HTTP/1.1. A real client over h2 makes its calls, and its
// session closes when it leaves.
func TestHTTP2OverTLS(t *testing.T) {
	certFile, keyFile := tlsFiles(t)
	// Caddy keeps its data (and would keep a CA) in the data directory.
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	up := httptest.NewServer(demo.Handler())
	t.Cleanup(up.Close)
	port, adminPort := freePort(t), freePort(t)
	loadCaddyfile(t, strings.NewReplacer("{cert}", certFile, "{key}", keyFile, "{admin}", adminPort, "{port}", port, "{upstream}", strings.TrimPrefix(up.URL, "http://")).Replace(`{
	admin 127.0.0.1:{admin}
	persist_config off
	skip_install_trust
	default_sni 127.0.0.1
}

https://127.0.0.1:{port} {
	bind 127.0.0.1
	tls {cert} {key}
	mcp_sse {
		resume_window off
	}
	reverse_proxy {upstream} {
		rewrite /mcp
	}
}
`))
	base := "https://127.0.0.1:" + port
	client := &http.Client{Transport: &http.Transport{
		// The certificate is self-signed, made for this test (tlsFiles).
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}}
	// Wait until the site answers.
	var probe *http.Response
	var err error
	eventually(t, 10*time.Second, "the TLS site answering", func() bool {
		probe, err = client.Get(base + "/nothing-here")
		return err == nil
	})
	probe.Body.Close()
	if probe.Proto != "HTTP/2.0" {
		t.Fatalf("client spoke %s, want HTTP/2.0", probe.Proto)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := newGoSDKClient("h2").Connect(ctx, sseTransport(base+"/sse", client), nil)
	if err != nil {
		t.Fatalf("connect over h2: %v", err)
	}
	for _, text := range []string{"one", "two"} {
		if got, err := echoCall(ctx, cs, text); err != nil || got != text {
			t.Fatalf("echo %q over h2: %q %v", text, got, err)
		}
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"steps": 2, "delay_ms": 10}}); err != nil {
		t.Fatalf("a call with progress over h2: %v", err)
	}
	if mcpsse.StoreLen() != 1 {
		t.Fatalf("%d sessions open, want 1", mcpsse.StoreLen())
	}
	cs.Close()
	eventually(t, 10*time.Second, "the session closed when the h2 client left", func() bool { return mcpsse.StoreLen() == 0 })
}
