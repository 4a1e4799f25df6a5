package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// contender is one server setup under measurement.
type contender struct {
	name  string
	sse   bool   // an HTTP+SSE server; false for the Streamable HTTP floor
	url   string // SSE URL, or the Streamable HTTP endpoint
	burst bool   // has the burst tool
	// modern: the Streamable HTTP floor speaks the sessionless revision
	// (no initialize; _meta and the Mcp-* headers on every call).
	modern bool
	// authorization is the Authorization header every request carries
	// (ours/auth: a token the real authorization server issued).
	authorization string
	main          *proc // the bridge or server itself (Caddy, for ours)
	procs         []*proc
	// spawns: the bridge's children are the servers it runs (ours/stdio),
	// so the bridge's own figures are of its process alone.
	spawns bool
	// Cluster mode (ours/cluster): the streams open on url's instance and
	// every POST goes to postHost, the other instance; bridges are both
	// Caddys (the "bridge" figures), admins their admin addresses (for
	// -profile), redis the server they share.
	postHost string
	bridges  []*proc
	admins   []string
	redis    *proc
	redisAt  string
}

func (c *contender) treePIDs() []int {
	var pids []int
	for _, p := range c.procs {
		pids = append(pids, tree(p.pid())...)
	}
	return pids
}

func (c *contender) mainPIDs() []int {
	if len(c.bridges) > 0 {
		var pids []int
		for _, p := range c.bridges {
			pids = append(pids, tree(p.pid())...)
		}
		return pids
	}
	if c.spawns {
		return []int{c.main.pid()}
	}
	return tree(c.main.pid())
}

func (c *contender) stop() {
	for _, p := range c.procs {
		p.stop()
	}
}

// env is what the contenders are built from.
type env struct {
	dir     string // build and log directory
	caddy   string // Caddy built from ../cmd/caddy
	servers string // ./cmd/servers
	nodeDir string // where supergateway is installed
	admin   string // Caddy's admin address; empty turns the admin API off
	extra   string // more mcp_sse subdirectives, one per line
	// profile, if set, is where the throughput scenario of ours/cluster
	// writes a CPU profile of each instance, profileFor long.
	profile    string
	profileFor time.Duration
}

var contenderNames = []string{"ours/go-sdk", "ours/sessionless", "ours/lean", "ours/auth", "ours/cluster", "ours/stdio", "direct", "direct/sessionless", "proxy/lean", "proxy/go-sdk", "go-sdk SSE", "mcp-go SSE", "supergateway", "bare"}

func (e *env) start(name string) (*contender, error) {
	switch name {
	case "ours/go-sdk":
		return e.startOurs(name, "streamable", "/mcp")
	case "ours/sessionless":
		// The same Go SDK server as ours/go-sdk, sessionless: the bridge
		// answers initialize itself and sends each call with _meta.
		return e.startOurs(name, "sessionless", "/mcp")
	case "ours/lean":
		return e.startOurs(name, "lean", "/mcp")
	case "ours/auth":
		return e.startOursAuth(name)
	case "proxy/lean", "proxy/go-sdk":
		// The same Caddy and upstream as ours/lean (ours/go-sdk) without
		// mcp_sse, reached by a Streamable HTTP client: what a Caddy with
		// reverse_proxy alone costs per call, the floor under the bridge's
		// Caddy.
		kind := map[string]string{"proxy/lean": "lean", "proxy/go-sdk": "streamable"}[name]
		c, err := e.startOurs(name, kind, "/mcp")
		if err != nil {
			return nil, err
		}
		c.sse, c.burst, c.url = false, false, strings.TrimSuffix(c.url, "/sse")+"/mcp"
		return c, nil
	case "ours/cluster":
		return e.startCluster(name, "lean", "/mcp")
	case "ours/cluster/go-sdk":
		return e.startCluster(name, "streamable", "/mcp")
	case "ours/stdio":
		return e.startOursStdio(name)
	case "direct":
		p, err := start(e.dir, "direct", true, e.servers, "-kind", "streamable")
		if err != nil {
			return nil, err
		}
		return &contender{name: name, url: "http://" + p.addr + "/mcp", main: p, procs: []*proc{p}}, nil
	case "direct/sessionless":
		// The sessionless Go SDK server of ours/sessionless, reached as a
		// client of the sessionless revision reaches it: the floor under
		// ours/sessionless, so that the upstream's cost and the bridge's
		// separate.
		p, err := start(e.dir, "direct-sessionless", true, e.servers, "-kind", "sessionless")
		if err != nil {
			return nil, err
		}
		return &contender{name: name, modern: true, url: "http://" + p.addr + "/mcp", main: p, procs: []*proc{p}}, nil
	case "go-sdk SSE", "mcp-go SSE", "bare":
		kind := map[string]string{"go-sdk SSE": "gosdk-sse", "mcp-go SSE": "mcpgo-sse", "bare": "bare"}[name]
		p, err := start(e.dir, kind, true, e.servers, "-kind", kind)
		if err != nil {
			return nil, err
		}
		return &contender{name: name, sse: true, url: "http://" + p.addr + "/sse", burst: name == "bare", main: p, procs: []*proc{p}}, nil
	case "supergateway":
		port := freePort()
		p, err := start(e.dir, "supergateway", false, "node",
			"--require", filepath.Join(e.nodeDir, "loopback.cjs"),
			filepath.Join(e.nodeDir, "node_modules", "supergateway", "dist", "index.js"),
			"--stdio", e.servers+" -kind stdio", "--port", port, "--logLevel", "none")
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + port
		if err := waitListening(addr); err != nil {
			p.stop()
			return nil, err
		}
		return &contender{name: name, sse: true, url: "http://" + addr + "/sse", main: p, procs: []*proc{p}}, nil
	}
	return nil, fmt.Errorf("unknown contender %q", name)
}

// startOurs runs the upstream and, in front of it, Caddy with mcp_sse,
// configured as the README recommends for many sessions at once (a larger
// idle pool of upstream connections).
func (e *env) startOurs(name, kind, path string) (*contender, error) {
	return e.startOursBehind(name, kind, path, "")
}

// startOursBehind is startOurs with before (Caddyfile lines) ahead of
// mcp_sse in the site.
func (e *env) startOursBehind(name, kind, path, before string) (*contender, error) {
	up, err := start(e.dir, kind+"-upstream", true, e.servers, "-kind", kind)
	if err != nil {
		return nil, err
	}
	port := freePort()
	// The admin endpoint is always on (idle, it costs nothing per call):
	// the throughput run reads Caddy's allocation counters from it.
	admin := "127.0.0.1:" + freePort()
	if e.admin != "" {
		admin = e.admin
	}
	bridge := fmt.Sprintf(`mcp_sse {
		max_sessions off
		max_sessions_per_client off
		%s
	}`, e.extra)
	if strings.HasPrefix(name, "proxy/") {
		bridge = ""
	}
	cfg := fmt.Sprintf(`{
	admin %s
	auto_https off
}

http://127.0.0.1:%s {
	bind 127.0.0.1
	%s
	%s
	reverse_proxy %s {
		rewrite %s
		transport http {
			keepalive_idle_conns_per_host 256
		}
	}
}
`, admin, port, before, bridge, up.addr, path)
	cfgPath := filepath.Join(e.dir, strings.ReplaceAll(name, "/", "-")+".Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		up.stop()
		return nil, err
	}
	caddy, err := start(e.dir, strings.ReplaceAll(name, "/", "-")+"-caddy", false, e.caddy, "run", "--config", cfgPath)
	if err != nil {
		up.stop()
		return nil, err
	}
	addr := "127.0.0.1:" + port
	if err := waitListening(addr); err != nil {
		caddy.stop()
		up.stop()
		return nil, err
	}
	return &contender{name: name, sse: true, url: "http://" + addr + "/sse", burst: true, main: caddy, procs: []*proc{caddy, up}, admins: []string{admin}}, nil
}

// startOursStdio runs Caddy with mcp_sse and mcp_stdio around the same Go
// SDK stdio server supergateway wraps: one process of it per session.
func (e *env) startOursStdio(name string) (*contender, error) {
	port := freePort()
	admin := "off"
	if e.admin != "" {
		admin = e.admin
	}
	cfg := fmt.Sprintf(`{
	admin %s
	auto_https off
}

http://127.0.0.1:%s {
	bind 127.0.0.1
	mcp_sse {
		max_sessions off
		%s
	}
	mcp_stdio * %s -kind stdio {
		max_processes 10000
	}
}
`, admin, port, e.extra, e.servers)
	cfgPath := filepath.Join(e.dir, "ours-stdio.Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	caddy, err := start(e.dir, "ours-stdio-caddy", false, e.caddy, "run", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + port
	if err := waitListening(addr); err != nil {
		caddy.stop()
		return nil, err
	}
	return &contender{name: name, sse: true, url: "http://" + addr + "/sse", main: caddy, procs: []*proc{caddy}, spawns: true}, nil
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

func waitListening(addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after 30s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
