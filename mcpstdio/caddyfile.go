package mcpstdio

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/internal/directive"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mcp_stdio", parseCaddyfile)
	// After mcp_sse, which dispatches to it, and before reverse_proxy, so
	// a Caddyfile needs no order line.
	httpcaddyfile.RegisterDirectiveOrder("mcp_stdio", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mcp_stdio [<matcher>] <command> [<args...>] {
//		env              <KEY> <VALUE>        # repeatable; placeholders allowed
//		env_from_header  <Header> <KEY>       # repeatable; read when the session starts
//		inherit_env      on | off | all | <KEY...>  # default on: PATH HOME USER LANG LC_* TZ TMPDIR
//		dir              <path>               # default: Caddy's working directory
//		max_processes    <n>                  # default 100
//		max_processes_per_client <n> | off    # default 10
//		idle_timeout     <duration> | off     # default 10m
//		startup_timeout  <duration>           # default 60s
//		stop_timeout     <duration>           # default 5s
//		max_message_size <size>               # default 4MiB
//		body_timeout     <duration> | off     # default 10s
//		max_pending_bytes <size> | off        # default 64MiB per process
//		max_batch_size   <n>                  # default 100
//		max_inflight     <n> | off            # default 64 per session
//		max_queued_bytes <size>               # default 4MiB per stream
//		send_timeout     <duration>           # default 30s
//		identity         <placeholder> | off  # default {http.auth.user.id}
//		allowed_origins  <origin...>          # cross-origin browser clients, or *
//		process_key      <placeholder>        # sessionless requests: default {http.auth.user.id}
//		input_timeout    <duration>           # default 10m
//		state_secret     <base64 of 32 bytes> # default: a random key
//	}
//
// The command runs without a shell. A command given by absolute path
// reads as a path matcher to Caddy: put a matcher before it
// (`mcp_stdio * /usr/local/bin/server`).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if !d.NextArg() {
		// Caddy reads a first argument starting with "/" as a path
		// matcher, so `mcp_stdio /usr/bin/server` arrives here with no
		// command left.
		return d.Errf("mcp_stdio needs a command; a command given by absolute path reads as a path matcher: " +
			"put a matcher before it, as in `mcp_stdio * /usr/bin/server`")
	}
	h.Command = d.Val()
	h.Args = d.RemainingArgs()
	for d.NextBlock(0) {
		var err error
		switch name := d.Val(); name {
		case "env":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("env takes <KEY> <VALUE>, got %d arguments", len(args))
			}
			if strings.ContainsAny(args[0], "=\x00") || args[0] == "" {
				return d.Errf("env: invalid variable name %q", args[0])
			}
			if h.Env == nil {
				h.Env = make(map[string]string)
			}
			h.Env[args[0]] = args[1]
		case "env_from_header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("env_from_header takes <Header> <KEY>, got %d arguments", len(args))
			}
			if strings.ContainsAny(args[1], "=\x00") {
				return d.Errf("env_from_header: invalid variable name %q", args[1])
			}
			if h.EnvFromHeader == nil {
				h.EnvFromHeader = make(map[string]string)
			}
			h.EnvFromHeader[args[0]] = args[1]
		case "inherit_env":
			args := d.RemainingArgs()
			switch {
			case len(args) == 0:
				return d.Errf("inherit_env takes on, off, all, or variable names")
			case h.InheritEnv != nil:
				return d.Errf("inherit_env given twice")
			}
			h.InheritEnv = InheritEnv(args)
			if verr := h.InheritEnv.validate(); verr != nil {
				return d.Errf("%v", verr)
			}
		case "dir":
			err = directive.OneArg(d, &h.Dir)
		case "max_processes":
			err = directive.Count(d, &h.MaxProcesses, false)
		case "max_processes_per_client":
			err = directive.Count(d, &h.MaxProcessesPerClient, true)
		case "idle_timeout":
			err = directive.Duration(d, &h.IdleTimeout, false)
		case "startup_timeout":
			err = directive.PositiveDuration(d, &h.StartupTimeout)
		case "stop_timeout":
			err = directive.PositiveDuration(d, &h.StopTimeout)
		case "max_message_size":
			var arg string
			if err = directive.OneArg(d, &arg); err == nil {
				n, perr := humanize.ParseBytes(arg)
				if perr != nil || n == 0 || n > 1<<40 {
					return d.Errf("max_message_size: invalid size %q: want a positive size such as 4MiB", arg)
				}
				h.MaxMessageSize = int64(n)
			}
		case "body_timeout":
			err = directive.Duration(d, &h.BodyTimeout, false)
		case "max_pending_bytes":
			err = directive.Size(d, &h.MaxPendingBytes, true)
		case "max_batch_size":
			err = directive.Count(d, &h.MaxBatchSize, false)
		case "max_inflight":
			err = directive.Count(d, &h.MaxInflight, true)
		case "max_queued_bytes":
			err = directive.Size(d, &h.MaxQueuedBytes, false)
		case "send_timeout":
			err = directive.PositiveDuration(d, &h.SendTimeout)
		case "identity":
			err = directive.OneArg(d, &h.Identity)
		case "process_key":
			err = directive.OneArg(d, &h.ProcessKey)
		case "input_timeout":
			err = directive.PositiveDuration(d, &h.InputTimeout)
		case "state_secret":
			if err = directive.OneArg(d, &h.StateSecret); err == nil && !strings.Contains(h.StateSecret, "{") {
				if _, kerr := cluster.ParseKey(h.StateSecret); kerr != nil {
					return d.Errf("state_secret: %v", kerr)
				}
			}
		case "allowed_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, o := range args {
				if o != "*" && !strings.Contains(o, "://") {
					return d.Errf("allowed_origins: %q is not an origin (scheme://host[:port])", o)
				}
			}
			h.AllowedOrigins = append(h.AllowedOrigins, args...)
		default:
			return d.Errf("unrecognized mcp_stdio subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
