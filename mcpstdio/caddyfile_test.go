package mcpstdio

import (
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Handler
	}{
		{"command only", `mcp_stdio server`, Handler{Command: "server"}},
		{"command and args", `mcp_stdio npx -y @scope/server stdio`, Handler{Command: "npx", Args: []string{"-y", "@scope/server", "stdio"}}},
		{"env", "mcp_stdio s {\n env A 1\n env B \"two words\"\n}", Handler{Command: "s", Env: map[string]string{"A": "1", "B": "two words"}}},
		{"env_from_header", "mcp_stdio s {\n env_from_header X-Token TOKEN\n}", Handler{Command: "s", EnvFromHeader: map[string]string{"X-Token": "TOKEN"}}},
		{"inherit_env off", "mcp_stdio s {\n inherit_env off\n}", Handler{Command: "s", InheritEnv: InheritEnv{"off"}}},
		{"inherit_env all", "mcp_stdio s {\n inherit_env all\n}", Handler{Command: "s", InheritEnv: InheritEnv{"all"}}},
		{"inherit_env names", "mcp_stdio s {\n inherit_env GITHUB_TOKEN AWS_*\n}", Handler{Command: "s", InheritEnv: InheritEnv{"GITHUB_TOKEN", "AWS_*"}}},
		{"dir", "mcp_stdio s {\n dir /srv\n}", Handler{Command: "s", Dir: "/srv"}},
		{"limits", "mcp_stdio s {\n max_processes 7\n max_processes_per_client 2\n}", Handler{Command: "s", MaxProcesses: 7, MaxProcessesPerClient: 2}},
		{"timeouts", "mcp_stdio s {\n idle_timeout 1m\n startup_timeout 90s\n stop_timeout 2s\n}", Handler{Command: "s",
			IdleTimeout: caddy.Duration(time.Minute), StartupTimeout: caddy.Duration(90 * time.Second), StopTimeout: caddy.Duration(2 * time.Second)}},
		{"idle off", "mcp_stdio s {\n idle_timeout off\n}", Handler{Command: "s", IdleTimeout: -1}},
		{"max_message_size", "mcp_stdio s {\n max_message_size 1MiB\n}", Handler{Command: "s", MaxMessageSize: 1 << 20}},
		{"identity", "mcp_stdio s {\n identity off\n}", Handler{Command: "s", Identity: "off"}},
		{"allowed_origins", "mcp_stdio s {\n allowed_origins https://a.example *\n}", Handler{Command: "s", AllowedOrigins: []string{"https://a.example", "*"}}},
		{"per client off", "mcp_stdio s {\n max_processes_per_client off\n}", Handler{Command: "s", MaxProcessesPerClient: -1}},
		{"post limits", "mcp_stdio s {\n body_timeout 3s\n max_pending_bytes 8MiB\n max_batch_size 5\n max_inflight 4\n}", Handler{Command: "s",
			BodyTimeout: caddy.Duration(3 * time.Second), MaxPendingBytes: 8 << 20, MaxBatchSize: 5, MaxInflight: 4}},
		{"post limits off", "mcp_stdio s {\n body_timeout off\n max_pending_bytes off\n max_inflight off\n}", Handler{Command: "s",
			BodyTimeout: -1, MaxPendingBytes: -1, MaxInflight: -1}},
		{"stream bounds", "mcp_stdio s {\n max_queued_bytes 1MiB\n send_timeout 5s\n}", Handler{Command: "s",
			MaxQueuedBytes: 1 << 20, SendTimeout: caddy.Duration(5 * time.Second)}},
		{"sessionless", "mcp_stdio s {\n process_key {http.request.header.X-User}\n input_timeout 2m\n state_secret {env.MCP_STATE_KEY}\n}", Handler{Command: "s",
			ProcessKey: "{http.request.header.X-User}", InputTimeout: caddy.Duration(2 * time.Minute), StateSecret: "{env.MCP_STATE_KEY}"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Handler
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct{ name, input, wantErr string }{
		{"no command", `mcp_stdio`, "mcp_stdio needs a command"},
		{"input_timeout off", "mcp_stdio s {\n input_timeout off\n}", "input_timeout"},
		{"process_key without a value", "mcp_stdio s {\n process_key\n}", "process_key"},
		{"state_secret not a key", "mcp_stdio s {\n state_secret hunter2\n}", "state_secret"},
		{"unknown", "mcp_stdio s {\n bogus 1\n}", "unrecognized mcp_stdio subdirective 'bogus'"},
		{"env one arg", "mcp_stdio s {\n env A\n}", "env takes <KEY> <VALUE>"},
		{"env bad name", "mcp_stdio s {\n env A=B c\n}", "env: invalid variable name"},
		{"env_from_header one arg", "mcp_stdio s {\n env_from_header X\n}", "env_from_header takes <Header> <KEY>"},
		{"inherit_env nothing", "mcp_stdio s {\n inherit_env\n}", "inherit_env takes on, off, all, or variable names"},
		{"inherit_env word among names", "mcp_stdio s {\n inherit_env all HOME\n}", `inherit_env: "all" stands alone`},
		{"inherit_env bad name", "mcp_stdio s {\n inherit_env A=B\n}", `inherit_env: invalid variable name "A=B"`},
		{"inherit_env star inside", "mcp_stdio s {\n inherit_env A*B\n}", `inherit_env: invalid variable name "A*B"`},
		{"max_processes 0", "mcp_stdio s {\n max_processes 0\n}", "max_processes must be a positive whole number"},
		{"stop_timeout off", "mcp_stdio s {\n stop_timeout off\n}", "stop_timeout: invalid duration"},
		{"startup_timeout negative", "mcp_stdio s {\n startup_timeout -1s\n}", "startup_timeout must be positive"},
		{"size", "mcp_stdio s {\n max_message_size lots\n}", "max_message_size: invalid size"},
		{"origin", "mcp_stdio s {\n allowed_origins example.com\n}", `allowed_origins: "example.com" is not an origin`},
		{"dir two args", "mcp_stdio s {\n dir a b\n}", "wrong argument count"},
		{"body_timeout", "mcp_stdio s {\n body_timeout soon\n}", "body_timeout: invalid duration"},
		{"max_pending_bytes", "mcp_stdio s {\n max_pending_bytes lots\n}", "max_pending_bytes: invalid size"},
		{"max_batch_size off", "mcp_stdio s {\n max_batch_size off\n}", "max_batch_size must be a positive whole number"},
		{"max_inflight 0", "mcp_stdio s {\n max_inflight 0\n}", "max_inflight must be a positive whole number"},
		{"max_queued_bytes off", "mcp_stdio s {\n max_queued_bytes off\n}", "max_queued_bytes: invalid size"},
		{"send_timeout off", "mcp_stdio s {\n send_timeout off\n}", "send_timeout: invalid duration"},
		{"per client 0", "mcp_stdio s {\n max_processes_per_client 0\n}", "max_processes_per_client must be a positive whole number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(tc.input, "\n") && !strings.Contains(err.Error(), ":2") {
				t.Errorf("err = %v, want it to name line 2", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		h       Handler
		wantErr string
	}{
		{"ok", Handler{Command: "s"}, ""},
		{"no command", Handler{}, "command is required"},
		{"bad env", Handler{Command: "s", Env: map[string]string{"A=B": "c"}}, "env: invalid variable name"},
		{"bad origin", Handler{Command: "s", AllowedOrigins: []string{"https://a/b"}}, "is not an origin"},
		{"negative stop", Handler{Command: "s", StopTimeout: -1}, "stop_timeout must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestAcceptsSSE(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", true},
		{"application/json, text/event-stream", true},
		{"text/event-stream;q=0.9", true},
		{"*/*", true},
		{"application/json", false},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("POST", "/", nil)
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		if got := acceptsSSE(r); got != tc.want {
			t.Errorf("acceptsSSE(%q) = %v", tc.accept, got)
		}
	}
}

func TestIDKey(t *testing.T) {
	if idKey([]byte("1")) != idKey([]byte("1.0")) || idKey([]byte(`"1"`)) == idKey([]byte("1")) {
		t.Error("ids: numbers must match by value, strings never match numbers")
	}
}

// TestAbsoluteCommandNamesTheMatcherRule: Caddy reads a first argument
// starting with "/" as a path matcher, which leaves mcp_stdio without a
// command; the error says so and how to write it.
func TestAbsoluteCommandNamesTheMatcherRule(t *testing.T) {
	in := "http://127.0.0.1:1 {\n\tmcp_stdio /usr/bin/server\n}\n"
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(in), nil)
	if err == nil {
		t.Fatal("adapted; want an error")
	}
	for _, want := range []string{"absolute path reads as a path matcher", "mcp_stdio * /usr/bin/server", ":2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
	// Written as the error says, it adapts, with the command in place.
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte("http://127.0.0.1:1 {\n\tmcp_stdio * /usr/bin/server\n}\n"), nil)
	if err != nil || !strings.Contains(string(out), `"command":"/usr/bin/server"`) {
		t.Fatalf("with a matcher: %v\n%s", err, out)
	}
}

// TestDefaultsApplied: defaults are applied in Provision, so JSON and
// Caddyfile users get the same.
func TestDefaultsApplied(t *testing.T) {
	h := Handler{Command: "s"}
	h.applyDefaults()
	want := Handler{Command: "s",
		MaxProcesses: DefaultMaxProcesses, MaxProcessesPerClient: DefaultMaxProcessesPerClient,
		IdleTimeout: caddy.Duration(DefaultIdleTimeout), StartupTimeout: caddy.Duration(DefaultStartupTimeout),
		StopTimeout: caddy.Duration(DefaultStopTimeout), MaxMessageSize: DefaultMaxMessageSize,
		BodyTimeout: caddy.Duration(DefaultBodyTimeout), MaxPendingBytes: DefaultMaxPendingBytes,
		MaxBatchSize: DefaultMaxBatchSize, MaxInflight: DefaultMaxInflight, MaxQueuedBytes: DefaultMaxQueuedBytes,
		SendTimeout: caddy.Duration(DefaultSendTimeout), Identity: "{http.auth.user.id}",
		ProcessKey: "{http.auth.user.id}", InputTimeout: caddy.Duration(10 * time.Minute)}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %+v\nwant %+v", h, want)
	}
	if DefaultMaxProcessesPerClient*4 > DefaultMaxProcesses {
		t.Errorf("max_processes_per_client's default (%d) must stay well below max_processes' (%d)", DefaultMaxProcessesPerClient, DefaultMaxProcesses)
	}
}
