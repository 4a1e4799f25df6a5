package mcpsse

// The mcp_sse app: what is configured once per process rather than per
// handler. Today that is cluster mode, where instances share their
// sessions through Redis.

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/internal/directive"
)

func init() {
	caddy.RegisterModule(App{})
	httpcaddyfile.RegisterGlobalOption("mcp_sse", parseGlobalOption)
}

// App is the mcp_sse app, the global `mcp_sse` option of the Caddyfile:
//
//	{
//		mcp_sse {
//			cluster redis://10.0.0.5:6379/0 {
//				prefix       mcp_sse
//				instance     edge-1
//				dial_timeout 2s
//				timeout      1s
//				lease        6s
//				allow_eviction
//			}
//		}
//	}
type App struct {
	// Cluster, if set, shares sessions with the other instances on the
	// same Redis. Without it nothing connects to Redis.
	Cluster *ClusterConfig `json:"cluster,omitempty"`

	member *clusterMember
	key    string
}

// ClusterConfig says how the instance joins its cluster.
type ClusterConfig struct {
	// URL of Redis: redis://[user:password@]host:port/db, or rediss://
	// for TLS. Placeholders such as {env.REDIS_URL} are replaced.
	URL string `json:"url"`
	// Prefix of every key and channel. Default: mcp_sse.
	Prefix string `json:"prefix,omitempty"`
	// Instance names this instance; unique in the cluster. Default: the
	// host name, the pid and random bytes.
	Instance string `json:"instance,omitempty"`
	// DialTimeout bounds connecting to Redis. Default: 2s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// Timeout bounds one Redis command. Default: 1s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Lease is how long an instance's claim on its sessions holds
	// without renewal; after it, another instance may take over a
	// session whose client reconnects there by its identity. Default: 6s.
	Lease caddy.Duration `json:"lease,omitempty"`
	// AllowEviction accepts a Redis whose maxmemory-policy may evict keys
	// when full (the default of managed Redis services), where one client
	// filling Redis drops other clients' sessions. Without it, an
	// instance whose Redis reports any policy but noeviction (INFO
	// memory) at start refuses to start. Default: false.
	AllowEviction bool `json:"allow_eviction,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "mcp_sse", New: func() caddy.Module { return new(App) }}
}

// Provision joins the cluster, or finds this process already in it (a
// reload with the same cluster settings keeps its membership, and its
// sessions).
func (a *App) Provision(ctx caddy.Context) error {
	if a.Cluster == nil {
		return nil
	}
	cfg := cluster.Config{
		URL:         caddy.NewReplacer().ReplaceKnown(a.Cluster.URL, ""),
		Prefix:      a.Cluster.Prefix,
		Instance:    a.Cluster.Instance,
		DialTimeout: time.Duration(a.Cluster.DialTimeout),
		Timeout:     time.Duration(a.Cluster.Timeout),
		Lease:       time.Duration(a.Cluster.Lease),

		AllowEviction: a.Cluster.AllowEviction,
	}
	if err := cluster.ParseURL(cfg.URL); err != nil {
		return fmt.Errorf("mcp_sse cluster: %w", err)
	}
	if cfg.Lease < 0 || cfg.Timeout < 0 || cfg.DialTimeout < 0 {
		return fmt.Errorf("mcp_sse cluster: lease, timeout and dial_timeout must be positive")
	}
	key, _ := json.Marshal(cfg)
	a.key = string(key)
	m, err := loadMember(a.key, cfg, ctx.Logger())
	if err != nil {
		return fmt.Errorf("mcp_sse cluster: %w", err)
	}
	a.member = m
	return nil
}

// Start implements caddy.App.
func (a *App) Start() error { return nil }

// Stop implements caddy.App.
func (a *App) Stop() error { return nil }

// Cleanup leaves the cluster membership; the last config to leave it
// closes the connection to Redis.
func (a *App) Cleanup() error {
	if a.member != nil {
		_, err := members.Delete(a.key)
		return err
	}
	return nil
}

// parseGlobalOption reads the global `mcp_sse` option.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // the option's name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "cluster":
			if app.Cluster != nil {
				return nil, d.Err("cluster given twice")
			}
			c := new(ClusterConfig)
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			c.URL = d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if err := cluster.ParseURL(c.URL); err != nil && !hasPlaceholder(c.URL) {
				return nil, d.Err(err.Error())
			}
			for d.NextBlock(1) {
				var err error
				switch d.Val() {
				case "prefix":
					err = directive.OneArg(d, &c.Prefix)
				case "instance":
					err = directive.OneArg(d, &c.Instance)
				case "dial_timeout":
					err = directive.PositiveDuration(d, &c.DialTimeout)
				case "timeout":
					err = directive.PositiveDuration(d, &c.Timeout)
				case "lease":
					err = directive.PositiveDuration(d, &c.Lease)
				case "allow_eviction":
					if d.NextArg() {
						err = d.ArgErr()
					}
					c.AllowEviction = true
				default:
					err = d.Errf("unknown cluster subdirective %q", d.Val())
				}
				if err != nil {
					return nil, err
				}
			}
			app.Cluster = c
		default:
			return nil, d.Errf("unknown mcp_sse global subdirective %q", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "mcp_sse", Value: caddyconfig.JSON(app, nil)}, nil
}

// hasPlaceholder: a URL such as {env.REDIS_URL} is checked once replaced,
// at provisioning.
func hasPlaceholder(s string) bool { return strings.Contains(s, "{") }

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
