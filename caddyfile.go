package mcpsse

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
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
			err = parsePath(d, &h.SSEPath)
		case "message_path":
			err = parsePath(d, &h.MessagePath)
		case "base_url":
			err = parseOneArg(d, &h.BaseURL)
		case "keepalive":
			err = parseDuration(d, &h.Keepalive, false)
		case "retry":
			err = parseDuration(d, &h.Retry, false)
		case "send_timeout":
			err = parseDuration(d, &h.SendTimeout, true)
		case "rapid_yield":
			err = parseRapidYield(d, h)
		case "cleanup_timeout":
			err = parsePositiveDuration(d, &h.CleanupTimeout)
		case "upstream_timeout":
			err = parsePositiveDuration(d, &h.UpstreamTimeout)
		case "max_message_size":
			err = parseSize(d, &h.MaxMessageSize, false)
		case "max_sessions":
			err = parseCount(d, &h.MaxSessions, true)
		case "queue_size":
			err = parseCount(d, &h.QueueSize, false)
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
			err = parseOneArg(d, &h.Identity)
		case "max_sessions_per_client":
			err = parseCount(d, &h.MaxSessionsPerClient, true)
		case "max_batch_size":
			err = parseCount(d, &h.MaxBatchSize, false)
		case "max_inflight":
			err = parseCount(d, &h.MaxInflight, true)
		case "max_pending_bytes":
			err = parseSize(d, &h.MaxPendingBytes, true)
		case "body_timeout":
			err = parseDuration(d, &h.BodyTimeout, false)
		case "upstream_listen":
			err = parseOnOff(d, &h.UpstreamListen)
		case "resume_cookie":
			err = parseOnOff(d, &h.ResumeCookie)
		case "keepalive_frame":
			if err = parseOneArg(d, &h.KeepaliveFrame); err == nil &&
				h.KeepaliveFrame != KeepaliveComment && h.KeepaliveFrame != KeepaliveEvent {
				err = d.Errf("keepalive_frame takes comment or event, not %q", h.KeepaliveFrame)
			}
		case "resume_window":
			err = parseDuration(d, &h.ResumeWindow, false)
		case "replay_buffer":
			err = parseCount(d, &h.ReplayBuffer, true)
		default:
			return d.Errf("unrecognized mcp_sse subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseOneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// parseOnOff reads on or off into a flag whose absence means its default.
func parseOnOff(d *caddyfile.Dispenser, dst **bool) error {
	name := d.Val()
	var arg string
	if err := parseOneArg(d, &arg); err != nil {
		return err
	}
	switch arg {
	case "on":
		*dst = &[]bool{true}[0]
	case "off":
		*dst = &[]bool{false}[0]
	default:
		return d.Errf("%s takes on or off, not %q", name, arg)
	}
	return nil
}

func parsePath(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if err := parseOneArg(d, dst); err != nil {
		return err
	}
	if (*dst)[0] != '/' {
		return d.Errf("%s must start with '/': %q", name, *dst)
	}
	return nil
}

// parseDuration reads a positive duration or "off" (stored as -1, as JSON
// spells off); zeroIsOff also takes 0 for off.
func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration, zeroIsOff bool) error {
	name := d.Val()
	var arg string
	if err := parseOneArg(d, &arg); err != nil {
		return err
	}
	if arg == "off" || (zeroIsOff && arg == "0") {
		*dst = -1
		return nil
	}
	v, err := caddy.ParseDuration(arg)
	if err != nil {
		return d.Errf("%s: invalid duration %q: %v", name, arg, err)
	}
	if v <= 0 {
		return d.Errf("%s must be positive or off: %q", name, arg)
	}
	*dst = caddy.Duration(v)
	return nil
}

func parsePositiveDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var arg string
	if err := parseOneArg(d, &arg); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(arg)
	if err != nil {
		return d.Errf("%s: invalid duration %q: %v", name, arg, err)
	}
	if v <= 0 {
		return d.Errf("%s must be positive: %q", name, arg)
	}
	*dst = caddy.Duration(v)
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

// parseSize reads a positive size such as 4MiB; offAllowed also takes
// "off" (stored as -1).
func parseSize(d *caddyfile.Dispenser, dst *int64, offAllowed bool) error {
	name := d.Val()
	var arg string
	if err := parseOneArg(d, &arg); err != nil {
		return err
	}
	if offAllowed && arg == "off" {
		*dst = -1
		return nil
	}
	n, err := humanize.ParseBytes(arg)
	if err != nil || n == 0 || n > 1<<40 {
		return d.Errf("%s: invalid size %q: want a positive size such as 4MiB", name, arg)
	}
	*dst = int64(n)
	return nil
}

// parseCount reads a positive whole number; offAllowed also takes "off"
// (stored as -1).
func parseCount(d *caddyfile.Dispenser, dst *int, offAllowed bool) error {
	name := d.Val()
	var arg string
	if err := parseOneArg(d, &arg); err != nil {
		return err
	}
	if offAllowed && arg == "off" {
		*dst = -1
		return nil
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n <= 0 {
		return d.Errf("%s must be a positive whole number: %q", name, arg)
	}
	*dst = n
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
