package mcpstdio_test

// Attacks on the sessionless path: a client that holds one identity (or
// none) and wants what another's process holds.

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestSessionlessEnvNeverShared: the environment a request gives its
// process (env_from_header, env with a request placeholder) is the
// process's: an anonymous client whose token differs from the one that
// started the process must not run on it and read that token.
func TestSessionlessEnvNeverShared(t *testing.T) {
	tc := startCaddy(t, site(`env GREETING "hello {http.request.header.X-Tenant}"
		env_from_header X-Api-Token API_TOKEN`))
	env := func(name string, header http.Header) string {
		t.Helper()
		r := postModern(t, tc, "", modernCall{id: 1, method: "tools/call", name: "env",
			params: map[string]any{"arguments": map[string]any{"name": name}}, header: header})
		if r.status != http.StatusOK || len(r.msgs) != 1 {
			t.Fatalf("env %s: %d %s", name, r.status, r.body)
		}
		return toolText(t, r.msgs[0])
	}
	victim := http.Header{"X-Api-Token": {"victim-secret"}, "X-Tenant": {"acme"}}
	if got := env("API_TOKEN", victim); got != "victim-secret" {
		t.Fatalf("the victim's own token: %q", got)
	}
	for _, c := range []struct {
		what   string
		header http.Header
		name   string
	}{
		{"another token", http.Header{"X-Api-Token": {"attacker"}, "X-Tenant": {"acme"}}, "API_TOKEN"},
		{"no token", http.Header{"X-Tenant": {"acme"}}, "API_TOKEN"},
		{"another tenant", http.Header{"X-Api-Token": {"victim-secret"}, "X-Tenant": {"evil"}}, "GREETING"},
	} {
		if got := env(c.name, c.header); got == "victim-secret" || got == "hello acme" {
			t.Errorf("%s: ran on the victim's process and read %s = %q", c.what, c.name, got)
		}
	}
	if got := env("API_TOKEN", victim); got != "victim-secret" {
		t.Errorf("the victim again: %q", got)
	}
	n := 0
	for _, p := range listProcesses(t, tc) {
		if p.Mode == "sessionless" {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d sessionless processes, want 4 (one per environment)", n)
	}
}

// TestSessionlessKeyNotShown: a process_key may be a cookie or a token
// (process_key {http.request.cookie.session}): the admin API, which any
// local process can read, and the log show a fingerprint of it, never
// the value, not even of a refused retry.
func TestSessionlessKeyNotShown(t *testing.T) {
	tc := startCaddy(t, site(`process_key {http.request.cookie.session}`))
	const cookie = "s3cret-cookie-value"
	r := postModern(t, tc, "", modernCall{id: 1, method: "tools/call", name: "echo",
		params: map[string]any{"arguments": map[string]any{"text": "hi"}}, header: http.Header{"Cookie": {"session=" + cookie}}})
	if r.status != http.StatusOK {
		t.Fatalf("echo: %d %s", r.status, r.body)
	}
	r = postModern(t, tc, "", modernCall{id: 2, method: "tools/call", name: "echo",
		params: map[string]any{"arguments": map[string]any{"text": "hi"}, "requestState": "forged", "inputResponses": map[string]any{}},
		header: http.Header{"Cookie": {"session=" + cookie}}})
	if r.status != http.StatusBadRequest {
		t.Fatalf("forged state: %d %s", r.status, r.body)
	}
	resp, err := rawHTTP.Get(tc.admin + "/mcp_stdio/processes")
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(admin), cookie) {
		t.Errorf("the admin API shows the key: %s", admin)
	}
	if !strings.Contains(string(admin), keyFingerprint(cookie)) {
		t.Errorf("the admin API does not show the key's fingerprint %s: %s", keyFingerprint(cookie), admin)
	}
	log, _ := os.ReadFile(tc.logFile)
	if strings.Contains(string(log), cookie) {
		t.Errorf("the log shows the key")
	}
}

// keyFingerprint is how the admin API and the log show a process_key:
// the first 16 hex digits of its SHA-256.
func keyFingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}
