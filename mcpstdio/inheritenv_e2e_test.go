package mcpstdio_test

import (
	"testing"
)

// TestInheritEnvDefault: a secret in Caddy's environment does not reach
// a server (whose env tool any client drives) unless inherit_env names it
// or is all; PATH does.
func TestInheritEnvDefault(t *testing.T) {
	const secret = "redis://:hunter2@db.internal:6379"
	t.Setenv("MCP_TEST_REDIS_URL", secret)
	tests := []struct {
		name, settings, wantSecret string
	}{
		{"default", ``, ""},
		{"on", `inherit_env on`, ""},
		{"named", `inherit_env MCP_TEST_REDIS_*`, secret},
		{"all", `inherit_env all`, secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := startCaddy(t, site(tt.settings))
			c := newRaw(t, tc)
			c.initialize()
			if got := toolText(t, c.callTool(1, "env", `{"name":"MCP_TEST_REDIS_URL"}`).msgs[0]); got != tt.wantSecret {
				t.Errorf("MCP_TEST_REDIS_URL = %q, want %q", got, tt.wantSecret)
			}
			if got := toolText(t, c.callTool(2, "env", `{"name":"PATH"}`).msgs[0]); got == "" {
				t.Error("PATH not inherited")
			}
		})
	}
}
