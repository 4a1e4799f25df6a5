// Package directive parses the arguments of Caddyfile subdirectives the
// way both handlers' directives spell them: durations and sizes that may
// be "off" (stored as -1, as JSON spells off), positive counts, on/off
// flags, each error naming the subdirective and, through the dispenser,
// its line.
package directive

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
)

// OneArg reads the subdirective's one argument into dst.
func OneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// OnOff reads on or off into a flag whose absence means its default.
func OnOff(d *caddyfile.Dispenser, dst **bool) error {
	name := d.Val()
	var arg string
	if err := OneArg(d, &arg); err != nil {
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

// Path reads a path, which must start with "/".
func Path(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if err := OneArg(d, dst); err != nil {
		return err
	}
	if (*dst)[0] != '/' {
		return d.Errf("%s must start with '/': %q", name, *dst)
	}
	return nil
}

// Duration reads a positive duration or "off" (stored as -1, as JSON
// spells off); zeroIsOff also takes 0 for off.
func Duration(d *caddyfile.Dispenser, dst *caddy.Duration, zeroIsOff bool) error {
	name := d.Val()
	var arg string
	if err := OneArg(d, &arg); err != nil {
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

// PositiveDuration reads a positive duration.
func PositiveDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var arg string
	if err := OneArg(d, &arg); err != nil {
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

// Size reads a positive size such as 4MiB; offAllowed also takes
// "off" (stored as -1).
func Size(d *caddyfile.Dispenser, dst *int64, offAllowed bool) error {
	name := d.Val()
	var arg string
	if err := OneArg(d, &arg); err != nil {
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

// Count reads a positive whole number; offAllowed also takes "off"
// (stored as -1).
func Count(d *caddyfile.Dispenser, dst *int, offAllowed bool) error {
	name := d.Val()
	var arg string
	if err := OneArg(d, &arg); err != nil {
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
