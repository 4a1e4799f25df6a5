package mcpstdio_test

// Attacks on the sessionless path: a client that holds one identity (or
// none) and wants what another's process holds.

import (
	"net/http"
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
