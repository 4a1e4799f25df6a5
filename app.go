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
//			cluster {env.REDIS_URL} {
//				secret           {env.MCP_CLUSTER_KEY}
//				previous_secrets {env.MCP_CLUSTER_OLD_KEY}
//				prefix           mcp_sse
//				instance         edge-1
//				dial_timeout     2s
//				timeout          1s
//				lease            6s
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
	keys   *cluster.Keyring
}

// ClusterConfig says how the instance joins its cluster.
type ClusterConfig struct {
	// URL of Redis: redis://[user:password@]host:port/db, or rediss://
	// for TLS. Placeholders such as {env.REDIS_URL} are replaced.
	URL string `json:"url"`
	// Secret encrypts (AES-256-GCM) what crosses Redis: the messages
	// clients post, with their headers, and the instances' control
	// messages. The base64 of 32 random bytes (openssl rand -base64 32),
	// the same on every instance; placeholders such as
	// {env.MCP_CLUSTER_KEY} are replaced. Required.
	Secret string `json:"secret,omitempty"`
	// PreviousSecrets open what older secrets encrypted, and encrypt
	// nothing: rotating is making the new secret current and the old one
	// previous, on every instance, then dropping it once no instance
	// encrypts with it and its entries have left Redis.
	PreviousSecrets []string `json:"previous_secrets,omitempty"`
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
	keys, err := a.Cluster.keyring()
	if err != nil {
		return fmt.Errorf("mcp_sse cluster: %w", err)
	}
	a.keys = keys
	// The membership's key leaves the secrets out (Keys is not
	// marshalled): a reload that rotates them keeps the node and its
	// sessions, and Start hands it the new keyring.
	key, _ := json.Marshal(cfg)
	a.key = string(key)
	cfg.Keys = keys
	m, err := loadMember(a.key, cfg, ctx.Logger())
	if err != nil {
		return fmt.Errorf("mcp_sse cluster: %w", err)
	}
	a.member = m
	return nil
}

// keyring reads the secrets, placeholders replaced.
func (c *ClusterConfig) keyring() (*cluster.Keyring, error) {
	repl := caddy.NewReplacer()
	current := repl.ReplaceKnown(c.Secret, "")
	if strings.TrimSpace(current) == "" {
		if c.Secret == "" {
			return nil, fmt.Errorf("cluster mode needs a secret, the base64 of 32 random bytes (openssl rand -base64 32), the same on every instance: secret {env.MCP_CLUSTER_KEY}")
		}
		return nil, fmt.Errorf("secret %s is empty once replaced (is the variable set?)", c.Secret)
	}
	previous := make([]string, len(c.PreviousSecrets))
	for i, p := range c.PreviousSecrets {
		previous[i] = repl.ReplaceKnown(p, "")
		if strings.TrimSpace(previous[i]) == "" {
			return nil, fmt.Errorf("previous secret %s is empty once replaced (is the variable set?)", p)
		}
	}
	return cluster.NewKeyring(current, previous...)
}

// Start implements caddy.App: the configuration is whole, and its keyring
// becomes the node's (it may be a reload's, with rotated secrets).
func (a *App) Start() error {
	if a.member != nil {
		a.member.node.SetKeys(a.keys)
	}
	return nil
}

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
				case "secret":
					if err = directive.OneArg(d, &c.Secret); err == nil {
						err = checkSecret(d, "secret", c.Secret)
					}
				case "previous_secrets":
					args := d.RemainingArgs()
					if len(args) == 0 {
						return nil, d.ArgErr()
					}
					for _, s := range args {
						if err = checkSecret(d, "previous_secrets", s); err != nil {
							break
						}
					}
					c.PreviousSecrets = append(c.PreviousSecrets, args...)
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
			if c.Secret == "" {
				return nil, d.Err("cluster needs a secret, the base64 of 32 random bytes (openssl rand -base64 32), the same on every instance: secret {env.MCP_CLUSTER_KEY}")
			}
			app.Cluster = c
		default:
			return nil, d.Errf("unknown mcp_sse global subdirective %q", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "mcp_sse", Value: caddyconfig.JSON(app, nil)}, nil
}

// checkSecret checks a secret written in the Caddyfile itself; one in a
// placeholder is checked once replaced, at provisioning.
// The error names the subdirective, never the secret.
func checkSecret(d *caddyfile.Dispenser, what, s string) error {
	if hasPlaceholder(s) {
		return nil
	}
	if _, err := cluster.ParseKey(s); err != nil {
		return d.Errf("%s: %v", what, err)
	}
	return nil
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
