package mcpsse

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/mcpsse/caddy-mcp-sse/internal/directive"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mcp_sse", parseCaddyfile)
	// Before reverse_proxy and mcp_stdio, which are what usually stand
	// behind it, so a Caddyfile needs no order line. mcp_stdio (imported,
	// so registered first) sits right before reverse_proxy; ordering
	// mcp_sse right after metrics, the directive before both, puts it
	// first: metrics, mcp_sse, mcp_stdio, reverse_proxy.
	httpcaddyfile.RegisterDirectiveOrder("mcp_sse", httpcaddyfile.After, "metrics")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mcp_sse [<matcher>] {
//		sse_path         <path>              # default /sse
//		message_path     <path>              # default /message
//		base_url         <url>               # default: relative endpoint URL
//		keepalive        <interval> | off    # default 30s
//		keepalive_frame  comment | event     # default comment
//		retry            <duration> | off    # default 5s
//		send_timeout     <duration> | off    # default 30s; 0 is off too
//		rapid_yield      <max> <window> | off # default 50 1s; max 0 is off too
//		cleanup_timeout  <duration>          # default 5s
//		max_message_size <size>              # default 4MiB
//		max_sessions     <n> | off           # default 10000
//		queue_size       <n>                 # default 1024
//		upstream_timeout <duration>          # default 120s
//		forward_headers  <field...>          # besides Authorization
//		allowed_origins  <origin...>         # cross-origin browser clients, or *
//		identity         <placeholder> | off # default {http.auth.user.id}
//		max_sessions_per_client <n> | off    # default 500
//		max_batch_size   <n>                 # default 100
//		max_inflight     <n> | off           # default 64 per session
//		max_pending_bytes <size> | off       # default 256MiB per process
//		body_timeout     <duration> | off    # default 10s
//		resume_window    <duration> | off    # default 30s
//		replay_buffer    <n> | off           # default 256 frames
//		resume_cookie    on | off            # default on
//		upstream_listen  on | off            # default on
//		upstream_protocol auto | 2026-07-28 | legacy # default auto
//		input_timeout    <duration>          # default 10m
//		max_input_rounds <n>                 # default 10
//	}
//
// Every subdirective is optional; omitted ones take their defaults.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "sse_path":
			err = directive.Path(d, &h.SSEPath)
		case "message_path":
			err = directive.Path(d, &h.MessagePath)
		case "base_url":
			err = directive.OneArg(d, &h.BaseURL)
		case "keepalive":
			err = directive.Duration(d, &h.Keepalive, false)
		case "retry":
			err = directive.Duration(d, &h.Retry, false)
		case "send_timeout":
			err = directive.Duration(d, &h.SendTimeout, true)
		case "rapid_yield":
			err = parseRapidYield(d, h)
		case "cleanup_timeout":
			err = directive.PositiveDuration(d, &h.CleanupTimeout)
		case "upstream_timeout":
			err = directive.PositiveDuration(d, &h.UpstreamTimeout)
		case "max_message_size":
			err = directive.Size(d, &h.MaxMessageSize, false)
		case "max_sessions":
			err = directive.Count(d, &h.MaxSessions, true)
		case "queue_size":
			err = directive.Count(d, &h.QueueSize, false)
		case "forward_headers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.ForwardHeaders = append(h.ForwardHeaders, args...)
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
		case "identity":
			err = directive.OneArg(d, &h.Identity)
		case "max_sessions_per_client":
			err = directive.Count(d, &h.MaxSessionsPerClient, true)
		case "max_batch_size":
			err = directive.Count(d, &h.MaxBatchSize, false)
		case "max_inflight":
			err = directive.Count(d, &h.MaxInflight, true)
		case "max_pending_bytes":
			err = directive.Size(d, &h.MaxPendingBytes, true)
		case "body_timeout":
			err = directive.Duration(d, &h.BodyTimeout, false)
		case "upstream_listen":
			err = directive.OnOff(d, &h.UpstreamListen)
		case "resume_cookie":
			err = directive.OnOff(d, &h.ResumeCookie)
		case "upstream_protocol":
			if err = directive.OneArg(d, &h.UpstreamProtocol); err == nil && !validUpstreamProtocol(h.UpstreamProtocol) {
				err = d.Errf("upstream_protocol takes auto, 2026-07-28 or legacy, not %q", h.UpstreamProtocol)
			}
		case "input_timeout":
			err = directive.PositiveDuration(d, &h.InputTimeout)
		case "max_input_rounds":
			err = directive.Count(d, &h.MaxInputRounds, false)
		case "keepalive_frame":
			if err = directive.OneArg(d, &h.KeepaliveFrame); err == nil &&
				h.KeepaliveFrame != KeepaliveComment && h.KeepaliveFrame != KeepaliveEvent {
				err = d.Errf("keepalive_frame takes comment or event, not %q", h.KeepaliveFrame)
			}
		case "resume_window":
			err = directive.Duration(d, &h.ResumeWindow, false)
		case "replay_buffer":
			err = directive.Count(d, &h.ReplayBuffer, true)
		default:
			return d.Errf("unrecognized mcp_sse subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseRapidYield(d *caddyfile.Dispenser, h *Handler) error {
	args := d.RemainingArgs()
	switch {
	case len(args) == 1 && (args[0] == "off" || args[0] == "0"):
		h.RapidYieldMax = -1
		return nil
	case len(args) != 2:
		return d.Errf("rapid_yield takes <max> <window> or off, got %d arguments", len(args))
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		return d.Errf("rapid_yield: max must be a whole number: %q", args[0])
	}
	if n == 0 {
		h.RapidYieldMax = -1
		return nil
	}
	w, err := caddy.ParseDuration(args[1])
	if err != nil || w <= 0 {
		return d.Errf("rapid_yield: window must be a positive duration: %q", args[1])
	}
	h.RapidYieldMax = n
	h.RapidYieldWindow = caddy.Duration(w)
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
