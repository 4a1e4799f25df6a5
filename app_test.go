package mcpsse

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func TestGlobalOptionErrors(t *testing.T) {
	tests := []struct {
		name, input, wantErr string
	}{
		{"argument on option", "mcp_sse x", "wrong argument count"},
		{"unknown subdirective", "mcp_sse {\n\tbogus\n}", "unknown mcp_sse global subdirective \"bogus\""},
		{"cluster without URL", "mcp_sse {\n\tcluster\n}", "wrong argument count"},
		{"cluster not redis", "mcp_sse {\n\tcluster http://h:6379\n}", "want redis:// or rediss://"},
		{"cluster bad db", "mcp_sse {\n\tcluster redis://h:6379/x\n}", "invalid database number"},
		{"cluster twice", "mcp_sse {\n\tcluster redis://h\n\tcluster redis://h\n}", "cluster given twice"},
		{"unknown cluster setting", "mcp_sse {\n\tcluster redis://h {\n\t\tpool 4\n\t}\n}", "unknown cluster subdirective \"pool\""},
		{"bad lease", "mcp_sse {\n\tcluster redis://h {\n\t\tlease 0s\n\t}\n}", "lease must be positive"},
		{"bad timeout", "mcp_sse {\n\tcluster redis://h {\n\t\ttimeout soon\n\t}\n}", "timeout: invalid duration"},
		{"prefix without value", "mcp_sse {\n\tcluster redis://h {\n\t\tprefix\n\t}\n}", "wrong argument count"},
		{"allow_eviction with a value", "mcp_sse {\n\tcluster redis://h {\n\t\tallow_eviction yes\n\t}\n}", "wrong argument count"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseGlobalOption(caddyfile.NewTestDispenser(tc.input), nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(tc.input, "\n") && !strings.Contains(err.Error(), ":") {
				t.Errorf("err = %v, want it to name its line", err)
			}
		})
	}
	// A placeholder is checked once replaced, at provisioning.
	if _, err := parseGlobalOption(caddyfile.NewTestDispenser("mcp_sse {\n\tcluster {env.REDIS_URL}\n}"), nil); err != nil {
		t.Errorf("placeholder URL: %v", err)
	}
}

// TestGlobalOptionAllowEviction: the Caddyfile's allow_eviction is the
// JSON's allow_eviction.
func TestGlobalOptionAllowEviction(t *testing.T) {
	for input, want := range map[string]bool{
		"mcp_sse {\n\tcluster redis://h {\n\t\tallow_eviction\n\t}\n}": true,
		"mcp_sse {\n\tcluster redis://h\n}":                            false,
	} {
		v, err := parseGlobalOption(caddyfile.NewTestDispenser(input), nil)
		if err != nil {
			t.Fatal(err)
		}
		var app App
		if err := json.Unmarshal(v.(httpcaddyfile.App).Value, &app); err != nil {
			t.Fatal(err)
		}
		if app.Cluster.AllowEviction != want {
			t.Errorf("%q: allow_eviction %v, want %v", input, app.Cluster.AllowEviction, want)
		}
	}
}
