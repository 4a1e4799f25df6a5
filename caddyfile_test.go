package mcpsse

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	// The adapt golden files use Caddy's own directives too.
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Handler
	}{
		{"empty", `mcp_sse`, Handler{}},
		{"empty block", "mcp_sse {\n}", Handler{}},
		{"sse_path", block(`sse_path /events`), Handler{SSEPath: "/events"}},
		{"message_path", block(`message_path /rpc`), Handler{MessagePath: "/rpc"}},
		{"base_url", block(`base_url https://mcp.example.com`), Handler{BaseURL: "https://mcp.example.com"}},
		{"keepalive", block(`keepalive 15s`), Handler{Keepalive: caddy.Duration(15 * time.Second)}},
		{"keepalive off", block(`keepalive off`), Handler{Keepalive: -1}},
		{"retry", block(`retry 2s`), Handler{Retry: caddy.Duration(2 * time.Second)}},
		{"retry off", block(`retry off`), Handler{Retry: -1}},
		{"send_timeout", block(`send_timeout 10s`), Handler{SendTimeout: caddy.Duration(10 * time.Second)}},
		{"send_timeout 0", block(`send_timeout 0`), Handler{SendTimeout: -1}},
		{"send_timeout off", block(`send_timeout off`), Handler{SendTimeout: -1}},
		{"rapid_yield", block(`rapid_yield 100 500ms`), Handler{RapidYieldMax: 100, RapidYieldWindow: caddy.Duration(500 * time.Millisecond)}},
		{"rapid_yield 0", block(`rapid_yield 0 1s`), Handler{RapidYieldMax: -1}},
		{"rapid_yield off", block(`rapid_yield off`), Handler{RapidYieldMax: -1}},
		{"cleanup_timeout", block(`cleanup_timeout 2s`), Handler{CleanupTimeout: caddy.Duration(2 * time.Second)}},
		{"max_message_size", block(`max_message_size 1MiB`), Handler{MaxMessageSize: 1 << 20}},
		{"max_message_size bytes", block(`max_message_size 5000`), Handler{MaxMessageSize: 5000}},
		{"max_sessions", block(`max_sessions 50`), Handler{MaxSessions: 50}},
		{"max_sessions off", block(`max_sessions off`), Handler{MaxSessions: -1}},
		{"queue_size", block(`queue_size 64`), Handler{QueueSize: 64}},
		{"upstream_timeout", block(`upstream_timeout 1m`), Handler{UpstreamTimeout: caddy.Duration(time.Minute)}},
		{"forward_headers", "mcp_sse {\n forward_headers X-Tenant X-Trace\n forward_headers Cookie\n}", Handler{ForwardHeaders: []string{"X-Tenant", "X-Trace", "Cookie"}}},
		{"allowed_origins", block(`allowed_origins https://app.example.com http://localhost:5173`), Handler{AllowedOrigins: []string{"https://app.example.com", "http://localhost:5173"}}},
		{"allowed_origins any", block(`allowed_origins *`), Handler{AllowedOrigins: []string{"*"}}},
		{"identity", block(`identity {http.request.header.X-User}`), Handler{Identity: "{http.request.header.X-User}"}},
		{"identity off", block(`identity off`), Handler{Identity: "off"}},
		{"max_sessions_per_client", block(`max_sessions_per_client 4`), Handler{MaxSessionsPerClient: 4}},
		{"max_batch_size", block(`max_batch_size 20`), Handler{MaxBatchSize: 20}},
		{"max_sessions_per_client off", block(`max_sessions_per_client off`), Handler{MaxSessionsPerClient: -1}},
		{"max_inflight", block(`max_inflight 8`), Handler{MaxInflight: 8}},
		{"max_inflight off", block(`max_inflight off`), Handler{MaxInflight: -1}},
		{"max_pending_bytes", block(`max_pending_bytes 64MiB`), Handler{MaxPendingBytes: 64 << 20}},
		{"max_pending_bytes off", block(`max_pending_bytes off`), Handler{MaxPendingBytes: -1}},
		{"body_timeout", block(`body_timeout 3s`), Handler{BodyTimeout: caddy.Duration(3 * time.Second)}},
		{"body_timeout off", block(`body_timeout off`), Handler{BodyTimeout: -1}},
		{"keepalive_frame event", block(`keepalive_frame event`), Handler{KeepaliveFrame: "event"}},
		{"resume_window", block(`resume_window 5m`), Handler{ResumeWindow: caddy.Duration(5 * time.Minute)}},
		{"resume_window off", block(`resume_window off`), Handler{ResumeWindow: -1}},
		{"replay_buffer", block(`replay_buffer 32`), Handler{ReplayBuffer: 32}},
		{"replay_buffer off", block(`replay_buffer off`), Handler{ReplayBuffer: -1}},
		{"resume_cookie off", block(`resume_cookie off`), Handler{ResumeCookie: &[]bool{false}[0]}},
		{"upstream_listen off", block(`upstream_listen off`), Handler{UpstreamListen: &[]bool{false}[0]}},
		{"upstream_listen on", block(`upstream_listen on`), Handler{UpstreamListen: &[]bool{true}[0]}},
		{"upstream_protocol auto", block(`upstream_protocol auto`), Handler{UpstreamProtocol: "auto"}},
		{"upstream_protocol modern", block(`upstream_protocol 2026-07-28`), Handler{UpstreamProtocol: "2026-07-28"}},
		{"upstream_protocol legacy", block(`upstream_protocol legacy`), Handler{UpstreamProtocol: "legacy"}},
		{"input_timeout", block(`input_timeout 90s`), Handler{InputTimeout: caddy.Duration(90 * time.Second)}},
		{"max_input_rounds", block(`max_input_rounds 3`), Handler{MaxInputRounds: 3}},
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

// block wraps subdirective lines in an mcp_sse block.
func block(lines string) string {
	return "mcp_sse {\n\t" + lines + "\n}"
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name, input, wantErr string
	}{
		{"argument on directive", `mcp_sse /sse`, "wrong argument count"},
		{"unknown subdirective", "mcp_sse {\n\tbogus 1\n}", "unrecognized mcp_sse subdirective 'bogus'"},
		{"path without slash", "mcp_sse {\n\tsse_path sse\n}", "sse_path must start with '/'"},
		{"missing value", "mcp_sse {\n\tkeepalive\n}", "wrong argument count"},
		{"extra value", "mcp_sse {\n\tretry 1s 2s\n}", "wrong argument count"},
		{"bad duration", "mcp_sse {\n\tkeepalive soon\n}", "keepalive: invalid duration"},
		{"negative duration", "mcp_sse {\n\tsend_timeout -5s\n}", "send_timeout must be positive or off"},
		{"keepalive 0", "mcp_sse {\n\tkeepalive 0\n}", "keepalive must be positive or off"},
		{"cleanup off", "mcp_sse {\n\tcleanup_timeout off\n}", "cleanup_timeout: invalid duration"},
		{"rapid_yield one arg", "mcp_sse {\n\trapid_yield 10\n}", "rapid_yield takes <max> <window> or off"},
		{"rapid_yield bad max", "mcp_sse {\n\trapid_yield many 1s\n}", "rapid_yield: max must be a whole number"},
		{"rapid_yield bad window", "mcp_sse {\n\trapid_yield 10 0s\n}", "rapid_yield: window must be a positive duration"},
		{"bad size", "mcp_sse {\n\tmax_message_size lots\n}", "max_message_size: invalid size"},
		{"zero queue", "mcp_sse {\n\tqueue_size 0\n}", "queue_size must be a positive whole number"},
		{"queue off", "mcp_sse {\n\tqueue_size off\n}", "queue_size must be a positive whole number"},
		{"no headers", "mcp_sse {\n\tforward_headers\n}", "wrong argument count"},
		{"origin without scheme", "mcp_sse {\n\tallowed_origins example.com\n}", "allowed_origins: \"example.com\" is not an origin"},
		{"zero per client", "mcp_sse {\n\tmax_sessions_per_client 0\n}", "max_sessions_per_client must be a positive whole number"},
		{"bad batch", "mcp_sse {\n\tmax_batch_size -1\n}", "max_batch_size must be a positive whole number"},
		{"zero inflight", "mcp_sse {\n\tmax_inflight 0\n}", "max_inflight must be a positive whole number"},
		{"bad pending bytes", "mcp_sse {\n\tmax_pending_bytes lots\n}", "max_pending_bytes: invalid size"},
		{"bad body timeout", "mcp_sse {\n\tbody_timeout 0\n}", "body_timeout must be positive or off"},
		{"bad keepalive frame", "mcp_sse {\n\tkeepalive_frame blank\n}", "keepalive_frame takes comment or event"},
		{"bad resume window", "mcp_sse {\n\tresume_window forever\n}", "resume_window: invalid duration"},
		{"bad resume cookie", "mcp_sse {\n\tresume_cookie yes\n}", "resume_cookie takes on or off"},
		{"bad listen", "mcp_sse {\n\tupstream_listen maybe\n}", "upstream_listen takes on or off"},
		{"bad upstream protocol", "mcp_sse {\n\tupstream_protocol 2025-11-25\n}", "upstream_protocol takes auto, 2026-07-28 or legacy, not \"2025-11-25\", at Testfile:2"},
		{"upstream protocol twice", "mcp_sse {\n\tupstream_protocol auto legacy\n}", "wrong argument count"},
		{"bad input timeout", "mcp_sse {\n\tinput_timeout 0\n}", "input_timeout must be positive"},
		{"bad input rounds", "mcp_sse {\n\tmax_input_rounds 0\n}", "max_input_rounds must be a positive whole number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			// Errors inside a block name the line of the offending token.
			if strings.Contains(tc.input, "\n") && !strings.Contains(err.Error(), ":2") {
				t.Errorf("err = %v, want it to name line 2", err)
			}
		})
	}
}

func TestDefaultsAndValidate(t *testing.T) {
	var h Handler
	h.applyDefaults()
	want := Handler{
		SSEPath: "/sse", MessagePath: "/message",
		Keepalive: caddy.Duration(30 * time.Second), Retry: caddy.Duration(5 * time.Second),
		SendTimeout: caddy.Duration(30 * time.Second), RapidYieldMax: 50, RapidYieldWindow: caddy.Duration(time.Second),
		CleanupTimeout: caddy.Duration(5 * time.Second), MaxMessageSize: 4 << 20, MaxSessions: 10000,
		QueueSize: 1024, UpstreamTimeout: caddy.Duration(120 * time.Second),
		Identity: "{http.auth.user.id}", MaxBatchSize: 100, MaxSessionsPerClient: 500,
		MaxInflight: 64, MaxPendingBytes: 256 << 20, BodyTimeout: caddy.Duration(10 * time.Second),
		KeepaliveFrame: "comment", ResumeWindow: caddy.Duration(30 * time.Second), ReplayBuffer: 256,
		UpstreamProtocol: "auto", InputTimeout: caddy.Duration(10 * time.Minute), MaxInputRounds: 10,
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("defaults = %+v\nwant %+v", h, want)
	}
	if err := h.Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v", err)
	}

	// Off stays off: defaults fill only what is unset.
	off := Handler{Keepalive: -1, SendTimeout: -1, RapidYieldMax: -1, MaxSessions: -1, Retry: -1,
		MaxSessionsPerClient: -1, MaxInflight: -1, MaxPendingBytes: -1, BodyTimeout: -1}
	off.applyDefaults()
	if off.Keepalive != -1 || off.SendTimeout != -1 || off.RapidYieldMax != -1 || off.MaxSessions != -1 || off.Retry != -1 ||
		off.MaxSessionsPerClient != -1 || off.MaxInflight != -1 || off.MaxPendingBytes != -1 || off.BodyTimeout != -1 {
		t.Errorf("defaults overrode off: %+v", off)
	}

	bad := []Handler{
		{SSEPath: "sse"},
		{MessagePath: "message"},
		{BaseURL: "example.com"},
		{BaseURL: "ftp://example.com"},
		{BaseURL: "https://example.com/?a=b"},
		{CleanupTimeout: -1},
		{UpstreamTimeout: -1},
		{MaxMessageSize: -1},
		{QueueSize: -1},
		{AllowedOrigins: []string{"example.com"}},
		{AllowedOrigins: []string{"https://example.com/path"}},
		{KeepaliveFrame: "blank"},
		{UpstreamProtocol: "2025-11-25"},
		{InputTimeout: -1},
		{MaxInputRounds: -1},
	}
	for _, b := range bad {
		b.applyDefaults()
		if err := b.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", b)
		}
	}
}

func TestRelativeRef(t *testing.T) {
	tests := []struct{ from, to, want string }{
		{"/sse", "/message", "message"},
		{"/mcp/sse", "/mcp/message", "message"},
		{"/a/sse", "/b/message", "../b/message"},
		{"/sse", "/mcp/message", "mcp/message"},
		{"/a/b/sse", "/message", "../../message"},
		{"/sse", "/message/", "message/"},
		{"/sse", "/a:b", "./a:b"},
		{"/x/", "/x/", "./"},
	}
	for _, tc := range tests {
		if got := relativeRef(tc.from, tc.to); got != tc.want {
			t.Errorf("relativeRef(%q, %q) = %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
}

var update = flag.Bool("update", false, "rewrite the adapt golden files")

// TestAdaptGolden adapts each testdata/adapt/*.caddyfile to JSON through
// Caddy's own adapter and compares it with the .json beside it.
func TestAdaptGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.caddyfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden Caddyfiles: %v", err)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := adapter.Adapt(in, map[string]any{"filename": file})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			if len(warnings) > 0 {
				t.Errorf("adapt warnings: %v", warnings)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "\t"); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := strings.TrimSuffix(file, ".caddyfile") + ".json"
			if *update {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("adapted %s differs from %s:\n%s", file, golden, pretty.String())
			}
		})
	}
}
