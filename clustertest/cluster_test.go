package clustertest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcpsse/caddy-mcp-sse/internal/caddyproc"
	"github.com/mcpsse/caddy-mcp-sse/internal/everything"
	"github.com/mcpsse/caddy-mcp-sse/internal/redistest"
	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
)

func TestMain(m *testing.M) {
	code := m.Run()
	caddyproc.RemoveBinary()
	everything.Remove()
	os.Exit(code)
}

// instanceNames are the cluster's mcp_sse instances, by their `instance`
// option.
var instanceNames = []string{"a", "b", "c"}

// cluster is one test's topology: a redis-server, the upstream (the demo
// MCP server, Streamable HTTP, in a Caddy of its own), three mcp_sse
// instances sharing their sessions through the Redis, and a Caddy
// balancing round-robin over them.
type cluster struct {
	redis    *redistest.Server
	prefix   string
	secret   string // the instances' cluster secret
	upstream *caddyproc.Proc
	upAddr   string
	inst     []*instance
	lb       *caddyproc.Proc
	lbAddr   string
}

// instance is one mcp_sse instance.
type instance struct {
	name  string // its `instance` option
	addr  string // host:port of its site
	admin string // host:port of its admin endpoint
	proc  *caddyproc.Proc
}

// base is the instance's site, http://host:port.
func (in *instance) base() string { return "http://" + in.addr }

// clusterOptions change the instances' Caddyfile.
type clusterOptions struct {
	// global are more lines of the instances' global options (a
	// servers block, say).
	global string
	// users, name → password: basic_auth in front of mcp_sse.
	users map[string]string
	// clusterExtra are more lines of the global cluster block.
	clusterExtra string
	// handlerExtra are more lines of the mcp_sse handler's block.
	handlerExtra string
	// upstream, if set, is the host:port of the MCP server the instances
	// proxy to, in place of the demo.
	upstream string
	// redisVia, by instance name: a proxy the instance reaches Redis
	// through.
	redisVia map[string]*redisProxy
}

// startCluster starts the whole topology and waits until every part
// answers. Everything is stopped when the test ends; a failed test shows
// every Caddy's log, each under its name.
func startCluster(t *testing.T, opts clusterOptions) *cluster {
	t.Helper()
	c := &cluster{redis: redistest.Start(t), prefix: "ctest" + randomHex(4), secret: newSecret()}

	upAdmin := addr(t)
	if opts.upstream != "" {
		c.upAddr = opts.upstream
	} else {
		c.upAddr = "127.0.0.1:" + testport.Free(t)
		c.upstream = caddyproc.Start(t, upAdmin, fmt.Sprintf(`{
	admin %s
}
http://%s {
	mcp_demo
}
`, upAdmin, c.upAddr), c.upAddr)
		c.upstream.Name = "upstream"
	}

	auth := ""
	if len(opts.users) > 0 {
		var b strings.Builder
		b.WriteString("\tbasic_auth {\n")
		names := make([]string, 0, len(opts.users))
		for name := range opts.users {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(&b, "\t\t%s %s\n", name, bcryptHash(t, opts.users[name]))
		}
		b.WriteString("\t}\n")
		auth = b.String()
	}
	var upstreams []string
	for _, name := range instanceNames {
		in := &instance{name: name, admin: addr(t), addr: addr(t)}
		redisURL := c.redis.URL()
		if p, ok := opts.redisVia[name]; ok {
			p.mu.Lock()
			p.target = c.redis.Addr()
			p.mu.Unlock()
			redisURL = p.url()
		}
		cfg := fmt.Sprintf(`{
	admin %s
%s	mcp_sse {
		cluster %s {
			secret %s
			prefix %s
			instance %s
%s		}
	}
}
http://%s {
%s	mcp_sse {
		resume_window 30s
		retry 500ms
%s	}
	reverse_proxy %s {
		rewrite /mcp
	}
}
`, in.admin, indent(opts.global, "\t"), redisURL, c.secret, c.prefix, name, indent(opts.clusterExtra, "\t\t\t"), in.addr, auth, indent(opts.handlerExtra, "\t\t"), c.upAddr)
		in.proc = caddyproc.Start(t, in.admin, cfg, in.addr)
		in.proc.Name = "instance " + name
		c.inst = append(c.inst, in)
		upstreams = append(upstreams, in.addr)
	}

	lbAdmin := addr(t)
	c.lbAddr = addr(t)
	// A dead instance is skipped: a refused dial is retried on the next
	// upstream for up to lb_try_duration, and the failure keeps it out of
	// the rotation for fail_duration. flush_interval -1 lets streams
	// through as they are written.
	c.lb = caddyproc.Start(t, lbAdmin, fmt.Sprintf(`{
	admin %s
}
http://%s {
	reverse_proxy %s {
		lb_policy round_robin
		lb_try_duration 5s
		lb_try_interval 100ms
		fail_duration 30s
		flush_interval -1
	}
}
`, lbAdmin, c.lbAddr, strings.Join(upstreams, " ")), c.lbAddr)
	c.lb.Name = "balancer"

	if c.upstream != nil {
		t.Logf("upstream %s (admin %s, pid %d)", c.upAddr, upAdmin, c.upstream.PID())
	}
	t.Logf("cluster: redis %s (prefix %s), upstream %s, balancer %s (admin %s, pid %d)",
		c.redis.Addr(), c.prefix, c.upAddr, c.lbAddr, lbAdmin, c.lb.PID())
	for _, in := range c.inst {
		t.Logf("instance %s: %s (admin %s, pid %d)", in.name, in.addr, in.admin, in.proc.PID())
	}
	t.Cleanup(func() {
		if t.Failed() {
			if keys, err := c.redis.Keys("*"); err == nil {
				t.Logf("--- redis keys: %d\n%s", len(keys), strings.Join(first(keys, 40), "\n"))
			}
		}
	})
	return c
}

// base is the balancer's URL: where clients connect.
func (c *cluster) base() string { return "http://" + c.lbAddr }

// byName is the instance named name.
func (c *cluster) byName(t *testing.T, name string) *instance {
	t.Helper()
	for _, in := range c.inst {
		if in.name == name {
			return in
		}
	}
	t.Fatalf("no instance named %q", name)
	return nil
}

// live is the instances whose process still runs.
func (c *cluster) live() []*instance {
	var live []*instance
	for _, in := range c.inst {
		if !in.proc.Exited() {
			live = append(live, in)
		}
	}
	return live
}

// sessionInfo is a session as the admin API lists it; Owner is the
// cluster's addition.
type sessionInfo struct {
	ID       string `json:"id"`
	Owner    string `json:"owner"`
	Identity string `json:"identity"`
	State    string `json:"state"`
}

// sessions lists the cluster's sessions through in's admin endpoint.
func (c *cluster) sessions(t *testing.T, in *instance) []sessionInfo {
	t.Helper()
	code, body, err := in.proc.AdminDo(http.MethodGet, "/mcp_sse/sessions", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("instance %s: GET /mcp_sse/sessions: %d %s %v", in.name, code, body, err)
	}
	var list struct {
		Count    int           `json:"count"`
		Sessions []sessionInfo `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("instance %s: GET /mcp_sse/sessions: %v\n%s", in.name, err, body)
	}
	if list.Count != len(list.Sessions) {
		t.Errorf("instance %s: session list says count %d and holds %d", in.name, list.Count, len(list.Sessions))
	}
	return list.Sessions
}

// ownerOf is the instance the cluster names as the owner of session id,
// asked through in's admin endpoint; it fails the test if the list does
// not hold the session or names no live instance.
// waitInboxEmpty waits until the session's inbox holds no entry: its
// owner has answered and deleted every message posted so far (initialize
// and notifications/initialized count against max_inflight until then).
func (c *cluster) waitInboxEmpty(t *testing.T, id string) {
	t.Helper()
	eventually(t, 15*time.Second, "session "+id+"'s inbox emptied", func() bool {
		n, err := c.redis.Do("XLEN", c.prefix+":s:{"+id+"}:in")
		return err == nil && n == "0"
	})
}

func (c *cluster) ownerOf(t *testing.T, in *instance, id string) *instance {
	t.Helper()
	for _, s := range c.sessions(t, in) {
		if s.ID == id {
			if s.Owner == "" {
				t.Fatalf("instance %s lists session %s without an owner: %+v", in.name, id, s)
			}
			return c.byName(t, s.Owner)
		}
	}
	t.Fatalf("instance %s does not list session %s", in.name, id)
	return nil
}

// metric sums the samples of the metric name on in's admin /metrics whose
// labels contain every one of labels (e.g. `direction="sent"`).
func (c *cluster) metric(t *testing.T, in *instance, name string, labels ...string) float64 {
	t.Helper()
	code, body, err := in.proc.AdminDo(http.MethodGet, "/metrics", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("instance %s: GET /metrics: %d %v", in.name, code, err)
	}
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, lbls, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(lbls, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("instance %s: metric line %q: %v", in.name, line, err)
		}
		sum += v
	}
	return sum
}

// checkKeys checks what the cluster keeps in Redis: every key under the
// prefix, none without a TTL, and every key naming one of sessions
// hash-tagged by it ({id}), so that Redis Cluster keeps a session's keys
// on one node.
func (c *cluster) checkKeys(t *testing.T, sessions []string) {
	t.Helper()
	keys, err := c.redis.Keys("*")
	if err != nil {
		t.Fatalf("redis KEYS: %v", err)
	}
	if len(keys) == 0 {
		t.Errorf("no key in redis while the cluster has sessions")
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, c.prefix) {
			t.Errorf("redis key %q is outside the prefix %q", k, c.prefix)
		}
		ttl, err := c.redis.Do("PTTL", k)
		if err != nil {
			t.Errorf("PTTL %s: %v", k, err)
		} else if ttl == "-1" {
			t.Errorf("redis key %q has no TTL: it would live forever", k)
		}
		for _, id := range sessions {
			if strings.Contains(k, id) && !strings.Contains(k, "{"+id+"}") {
				t.Errorf("redis key %q names session %s without the hash tag {%s}", k, id, id)
			}
		}
	}
}

// addr is 127.0.0.1:<free port>.
func addr(t *testing.T) string { return "127.0.0.1:" + testport.Free(t) }

func bcryptHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// indent puts prefix before every line of s (which ends in a newline
// unless empty).
// newSecret is a cluster secret: the base64 of 32 random bytes.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func indent(s, prefix string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		b.WriteString(prefix + strings.TrimSpace(l) + "\n")
	}
	return b.String()
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// eventually polls cond until it holds, failing the test after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
