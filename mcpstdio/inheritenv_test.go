package mcpstdio

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestInheritEnvJSON(t *testing.T) {
	tests := []struct {
		name, in string
		want     InheritEnv
		out      string // as marshalled again
	}{
		{"absent", `{}`, nil, `{}`},
		{"on", `{"inherit_env":"on"}`, InheritEnv{"on"}, `{"inherit_env":"on"}`},
		{"off", `{"inherit_env":"off"}`, InheritEnv{"off"}, `{"inherit_env":"off"}`},
		{"all", `{"inherit_env":"all"}`, InheritEnv{"all"}, `{"inherit_env":"all"}`},
		{"names", `{"inherit_env":["GITHUB_TOKEN","AWS_*"]}`, InheritEnv{"GITHUB_TOKEN", "AWS_*"}, `{"inherit_env":["GITHUB_TOKEN","AWS_*"]}`},
		{"one name", `{"inherit_env":["GITHUB_TOKEN"]}`, InheritEnv{"GITHUB_TOKEN"}, `{"inherit_env":["GITHUB_TOKEN"]}`},
		// What configs written before the short list held.
		{"true", `{"inherit_env":true}`, InheritEnv{"on"}, `{"inherit_env":"on"}`},
		{"false", `{"inherit_env":false}`, InheritEnv{"off"}, `{"inherit_env":"off"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h struct {
				InheritEnv InheritEnv `json:"inherit_env,omitempty"`
			}
			if err := json.Unmarshal([]byte(tc.in), &h); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(h.InheritEnv, tc.want) {
				t.Fatalf("read %q, want %q", h.InheritEnv, tc.want)
			}
			out, err := json.Marshal(h)
			if err != nil || string(out) != tc.out {
				t.Errorf("written as %s (%v), want %s", out, err, tc.out)
			}
		})
	}
	var h Handler
	if err := json.Unmarshal([]byte(`{"inherit_env":3}`), &h); err == nil || !strings.Contains(err.Error(), "inherit_env") {
		t.Errorf("inherit_env 3: err %v, want one naming inherit_env", err)
	}
	h = Handler{Command: "s", InheritEnv: InheritEnv{"off", "HOME"}}
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), `"off" stands alone`) {
		t.Errorf("off among names: err %v", err)
	}
}

// TestInheritEnvEnviron: what a process gets of Caddy's environment; a
// secret in it (the REDIS_URL the issue saw come back through a server's
// env tool) only when asked for.
func TestInheritEnvEnviron(t *testing.T) {
	caddyEnv := []string{"PATH=/usr/bin", "HOME=/var/lib/caddy", "LC_ALL=C.UTF-8", "TZ=UTC",
		"REDIS_URL=redis://:hunter2@db:6379", "GITHUB_TOKEN=ghp_x", "AWS_REGION=eu-west-1"}
	short := []string{"PATH=/usr/bin", "HOME=/var/lib/caddy", "LC_ALL=C.UTF-8", "TZ=UTC"}
	tests := []struct {
		name string
		ie   InheritEnv
		want []string
	}{
		{"default", nil, short},
		{"on", InheritEnv{"on"}, short},
		{"off", InheritEnv{"off"}, []string{}},
		{"all", InheritEnv{"all"}, caddyEnv},
		{"names", InheritEnv{"GITHUB_TOKEN", "AWS_*"}, append(slices.Clone(short[:4]), "GITHUB_TOKEN=ghp_x", "AWS_REGION=eu-west-1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.ie.environ(caddyEnv); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestInheritEnvGivenTwice(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("mcp_stdio s {\n inherit_env off\n inherit_env all\n}"))
	if err == nil || !strings.Contains(err.Error(), "inherit_env given twice") || !strings.Contains(err.Error(), ":3") {
		t.Errorf("err %v, want inherit_env given twice at line 3", err)
	}
}
