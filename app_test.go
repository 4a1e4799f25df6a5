package mcpsse

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
)

// A cluster secret for the tests: the base64 of 32 bytes.
const testClusterSecret = "bWNwX3NzZSB0ZXN0cyBzZWNyZXQgMzIgYnl0ZXMgISE="

func TestGlobalOptionErrors(t *testing.T) {
	const sec = "\t\tsecret " + testClusterSecret + "\n"
	tests := []struct {
		name, input, wantErr string
	}{
		{"argument on option", "mcp_sse x", "wrong argument count"},
		{"unknown subdirective", "mcp_sse {\n\tbogus\n}", "unknown mcp_sse global subdirective \"bogus\""},
		{"cluster without URL", "mcp_sse {\n\tcluster\n}", "wrong argument count"},
		{"cluster not redis", "mcp_sse {\n\tcluster http://h:6379\n}", "want redis:// or rediss://"},
		{"cluster bad db", "mcp_sse {\n\tcluster redis://h:6379/x\n}", "invalid database number"},
		{"cluster twice", "mcp_sse {\n\tcluster redis://h {\n" + sec + "\t}\n\tcluster redis://h {\n" + sec + "\t}\n}", "cluster given twice"},
		{"unknown cluster setting", "mcp_sse {\n\tcluster redis://h {\n\t\tpool 4\n\t}\n}", "unknown cluster subdirective \"pool\""},
		{"bad lease", "mcp_sse {\n\tcluster redis://h {\n\t\tlease 0s\n\t}\n}", "lease must be positive"},
		{"bad timeout", "mcp_sse {\n\tcluster redis://h {\n\t\ttimeout soon\n\t}\n}", "timeout: invalid duration"},
		{"prefix without value", "mcp_sse {\n\tcluster redis://h {\n\t\tprefix\n\t}\n}", "wrong argument count"},
		{"cluster without secret", "mcp_sse {\n\tcluster redis://h {\n\t\tprefix p\n\t}\n}", "cluster needs a secret"},
		{"cluster without block", "mcp_sse {\n\tcluster redis://h\n}", "cluster needs a secret"},
		{"secret not base64", "mcp_sse {\n\tcluster redis://h {\n\t\tsecret hunter2!!\n\t}\n}", "secret: the secret is not base64"},
		{"secret too short", "mcp_sse {\n\tcluster redis://h {\n\t\tsecret c2hvcnRrZXk=\n\t}\n}", "secret: the secret decodes to 8 bytes"},
		{"secret without value", "mcp_sse {\n\tcluster redis://h {\n\t\tsecret\n\t}\n}", "wrong argument count"},
		{"previous_secrets without value", "mcp_sse {\n\tcluster redis://h {\n" + sec + "\t\tprevious_secrets\n\t}\n}", "wrong argument count"},
		{"previous secret too short", "mcp_sse {\n\tcluster redis://h {\n" + sec + "\t\tprevious_secrets {env.K} c2hvcnRrZXk=\n\t}\n}", "previous_secrets: the secret decodes to 8 bytes"},
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
			for _, secret := range []string{"hunter2", "c2hvcnRrZXk"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("err = %v shows the secret", err)
				}
			}
		})
	}
	// A placeholder is checked once replaced, at provisioning.
	if _, err := parseGlobalOption(caddyfile.NewTestDispenser("mcp_sse {\n\tcluster {env.REDIS_URL} {\n\t\tsecret {env.K}\n\t\tprevious_secrets {env.K1} {env.K2}\n\t\tprevious_secrets {env.K3}\n\t}\n}"), nil); err != nil {
		t.Errorf("placeholders: %v", err)
	}
}

// The secrets are read, placeholders replaced, when the app provisions:
// a missing or malformed one stops it with an error saying which, and
// never what it holds.
func TestClusterKeyring(t *testing.T) {
	const other = "b3RoZXIgc2VjcmV0IG9mIHRoZSBrZXlyaW5nIHRlc3Q="
	t.Setenv("MCP_TEST_KEY", testClusterSecret)
	t.Setenv("MCP_TEST_OLD_KEY", other)
	t.Setenv("MCP_TEST_BAD_KEY", "hunter2hunter2")
	t.Setenv("MCP_TEST_EMPTY_KEY", "")
	kr, err := (&ClusterConfig{Secret: "{env.MCP_TEST_KEY}", PreviousSecrets: []string{"{env.MCP_TEST_OLD_KEY}"}}).keyring()
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	direct, _ := (&ClusterConfig{Secret: testClusterSecret}).keyring()
	if direct == nil || kr.ID() != direct.ID() {
		t.Errorf("the placeholder's keyring seals with another key than the secret's")
	}
	for _, tc := range []struct {
		c    ClusterConfig
		want string
	}{
		{ClusterConfig{}, "cluster mode needs a secret"},
		{ClusterConfig{Secret: "{env.MCP_TEST_UNSET_KEY}"}, "secret {env.MCP_TEST_UNSET_KEY} is empty once replaced"},
		{ClusterConfig{Secret: "{env.MCP_TEST_EMPTY_KEY}"}, "is empty once replaced"},
		{ClusterConfig{Secret: "{env.MCP_TEST_BAD_KEY}"}, "secret: the secret decodes to 10 bytes"},
		{ClusterConfig{Secret: "{env.MCP_TEST_KEY}", PreviousSecrets: []string{"{env.MCP_TEST_UNSET_KEY}"}}, "previous secret {env.MCP_TEST_UNSET_KEY} is empty"},
		{ClusterConfig{Secret: "{env.MCP_TEST_KEY}", PreviousSecrets: []string{"{env.MCP_TEST_BAD_KEY}"}}, "previous secret 1: the secret decodes to 10 bytes"},
		{ClusterConfig{Secret: "{env.MCP_TEST_KEY}", PreviousSecrets: []string{testClusterSecret}}, "given twice"},
	} {
		_, err := tc.c.keyring()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("keyring of %+v: %v, want %q", tc.c, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), testClusterSecret) {
			t.Errorf("keyring's error shows a secret: %v", err)
		}
	}
}

// TestGlobalOptionAllowEviction: the Caddyfile's allow_eviction is the
// JSON's allow_eviction.
func TestGlobalOptionAllowEviction(t *testing.T) {
	for input, want := range map[string]bool{
		"mcp_sse {\n\tcluster redis://h {\n\t\tsecret " + testClusterSecret + "\n\t\tallow_eviction\n\t}\n}": true,
		"mcp_sse {\n\tcluster redis://h {\n\t\tsecret " + testClusterSecret + "\n\t}\n}":                     false,
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

// testClusterKeys is the keyring of testClusterSecret.
func testClusterKeys(t *testing.T) *cluster.Keyring {
	t.Helper()
	kr, err := cluster.NewKeyring(testClusterSecret)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
