package main

// ours/cluster: two Caddy instances in cluster mode sharing their sessions
// through one redis-server, in front of one upstream process they both
// proxy to (so the upstream sessions are shared too). Every stream opens
// on instance a and every POST goes to instance b, so every message
// crosses instances: posted into the session's inbox in Redis by b,
// dispatched by a, the stream's owner.

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clusterBaseline is the single-instance contender each cluster contender
// is measured against: the same Caddy and upstream, one instance, no
// Redis.
var clusterBaseline = map[string]string{
	"ours/cluster":        "ours/lean",
	"ours/cluster/go-sdk": "ours/go-sdk",
}

// redisBackgroundWindow is how long the throughput scenario of a cluster
// contender watches Redis with every session open and no call running,
// to tell the commands of the calls from the owners' lease renewals
// (every lease/3, 2 s by default: a few per session per round).
const redisBackgroundWindow = 4 * time.Second

// scriptCommands are the commands the cluster's Lua scripts run inside
// Redis (cluster/scripts.go): counted by Redis, but no round trip of
// their own. PEXPIRE and PUBLISH are also sent directly, but only by the
// lease renewal and the admin API, which the background window accounts
// for.
var scriptCommands = map[string]bool{
	"time": true, "hmget": true, "hset": true, "hgetall": true, "xadd": true, "xlen": true,
	"pttl": true, "pexpire": true, "publish": true, "xdel": true, "del": true,
}

// startCluster runs redis-server, one upstream, and two Caddys in cluster
// mode in front of it, instances "a" (which the streams open on) and "b"
// (which every POST goes to).
func (e *env) startCluster(name, kind, path string) (c *contender, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%s needs redis-server (Debian package redis-server; scripts/test installs it): %v", name, err)
	}
	slug := strings.ReplaceAll(name, "/", "-")
	c = &contender{name: name, sse: true, burst: true}
	var rd, up *proc
	defer func() {
		if err != nil {
			for _, p := range c.bridges {
				p.stop()
			}
			up.stop()
			rd.stop()
		}
	}()
	rport := freePort()
	rd, err = start(e.dir, slug+"-redis", false, bin, "--port", rport, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction")
	if err != nil {
		return nil, err
	}
	c.redis, c.redisAt = rd, "127.0.0.1:"+rport
	if err = waitListening(c.redisAt); err != nil {
		return nil, err
	}
	up, err = start(e.dir, slug+"-"+kind+"-upstream", true, e.servers, "-kind", kind)
	if err != nil {
		return nil, err
	}
	// The instances' shared secret: what crosses Redis is encrypted.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret := base64.StdEncoding.EncodeToString(key)
	var addrs []string
	for i, inst := range []string{"a", "b"} {
		port := freePort()
		admin := "off"
		switch {
		case i == 0 && e.admin != "":
			admin = e.admin
		case e.admin != "" || e.profile != "":
			admin = "127.0.0.1:" + freePort()
		}
		cfg := fmt.Sprintf(`{
	admin %s
	auto_https off
	mcp_sse {
		cluster redis://%s/0 {
			secret %s
			prefix bench
			instance %s
		}
	}
}

http://127.0.0.1:%s {
	bind 127.0.0.1
	mcp_sse {
		max_sessions off
		max_sessions_per_client off
		%s
	}
	reverse_proxy %s {
		rewrite %s
		transport http {
			keepalive_idle_conns_per_host 256
		}
	}
}
`, admin, c.redisAt, secret, inst, port, e.extra, up.addr, path)
		cfgPath := filepath.Join(e.dir, slug+"-"+inst+".Caddyfile")
		if err = os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		var p *proc
		p, err = start(e.dir, slug+"-caddy-"+inst, false, e.caddy, "run", "--config", cfgPath)
		if err != nil {
			return nil, err
		}
		c.bridges = append(c.bridges, p)
		if admin != "off" {
			c.admins = append(c.admins, admin)
		}
		addrs = append(addrs, "127.0.0.1:"+port)
	}
	for _, a := range addrs {
		if err = waitListening(a); err != nil {
			return nil, err
		}
	}
	// Caddys first, so that they leave the cluster while Redis is up.
	c.procs = append(slices.Clone(c.bridges), up, rd)
	c.main = c.bridges[0]
	c.url = "http://" + addrs[0] + "/sse"
	c.postHost = addrs[1]
	if len(c.admins) > 0 {
		log.Printf("%s: instance a %s (admin %s), instance b %s, redis %s (pid %d)", name, addrs[0], c.admins[0], addrs[1], c.redisAt, rd.pid())
	}
	return c, nil
}

// redisCommand sends one command to the Redis at addr and returns its
// reply, which must be a bulk string (what INFO answers).
func redisCommand(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	br := bufio.NewReader(conn)
	head, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	head = strings.TrimRight(head, "\r\n")
	if !strings.HasPrefix(head, "$") {
		return "", fmt.Errorf("redis %s: %s", args[0], head)
	}
	n, err := strconv.Atoi(head[1:])
	if err != nil || n < 0 {
		return "", fmt.Errorf("redis %s: reply %q", args[0], head)
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(br, body); err != nil {
		return "", err
	}
	return string(body[:n]), nil
}

// redisCalls is how many times Redis has run each command, by name
// (INFO commandstats), this bench's own INFO left out.
func redisCalls(addr string) (map[string]int64, error) {
	info, err := redisCommand(addr, "INFO", "commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, l := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd || name == "info" {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				out[name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out, nil
}

func diffCalls(after, before map[string]int64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = float64(d)
		}
	}
	return out
}

// redisResult is what Redis did for the calls of a throughput run.
type redisResult struct {
	// perCall is commands per call by name, net of the background: those
	// the instances sent (round trips, unless pipelined) and those the
	// scripts ran inside Redis.
	perCall map[string]float64
	// sent and executed sum perCall over the commands sent by the
	// instances, and over all.
	sent, executed float64
	// raw: the same sums before the background is taken off.
	rawSent, rawExecuted float64
	// background is commands per second with the sessions open and no
	// call running (lease renewals).
	background float64
	cpu        float64 // Redis CPU-seconds per 1,000 calls
}

// redisProbe measures Redis around a throughput run.
type redisProbe struct {
	addr      string
	pid       int
	bg        map[string]float64 // per second
	before    map[string]int64
	cpuBefore float64
	started   time.Time
	bgTotal   float64
}

// startRedisProbe watches Redis idle for redisBackgroundWindow, then
// takes the counts the run starts from.
func startRedisProbe(c *contender) (*redisProbe, error) {
	p := &redisProbe{addr: c.redisAt, pid: c.redis.pid()}
	b0, err := redisCalls(p.addr)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	time.Sleep(redisBackgroundWindow)
	b1, err := redisCalls(p.addr)
	if err != nil {
		return nil, err
	}
	secs := time.Since(t0).Seconds()
	p.bg = diffCalls(b1, b0)
	for k, v := range p.bg {
		p.bg[k] = v / secs
		p.bgTotal += v / secs
	}
	p.before, p.cpuBefore, p.started = b1, cpuSeconds([]int{p.pid}), time.Now()
	return p, nil
}

func (p *redisProbe) finish(calls int) (redisResult, error) {
	after, err := redisCalls(p.addr)
	if err != nil {
		return redisResult{}, err
	}
	elapsed := time.Since(p.started).Seconds()
	res := redisResult{perCall: map[string]float64{}, background: p.bgTotal,
		cpu: (cpuSeconds([]int{p.pid}) - p.cpuBefore) / float64(calls) * 1000}
	for k, v := range diffCalls(after, p.before) {
		raw := v / float64(calls)
		net := (v - p.bg[k]*elapsed) / float64(calls)
		res.perCall[k] = net
		res.executed += net
		res.rawExecuted += raw
		if !scriptCommands[k] {
			res.sent += net
			res.rawSent += raw
		}
	}
	return res, nil
}

func (r *redisResult) byCommand() string {
	names := slices.Sorted(maps.Keys(r.perCall))
	slices.SortStableFunc(names, func(a, b string) int {
		if scriptCommands[a] != scriptCommands[b] {
			if scriptCommands[a] {
				return 1
			}
			return -1
		}
		return 0
	})
	var parts []string
	for _, n := range names {
		if v := r.perCall[n]; v >= 0.005 || v <= -0.005 {
			parts = append(parts, fmt.Sprintf("%s %.2f", strings.ToUpper(n), v))
		}
	}
	return strings.Join(parts, ", ")
}

// startProfiles fetches a CPU profile of every Caddy of c with an admin
// endpoint, for e.profileFor, into e.profile; the returned func waits for
// them.
func startProfiles(e *env, c *contender, scenario string) func() {
	if e.profile == "" || len(c.admins) == 0 {
		return func() {}
	}
	if err := os.MkdirAll(e.profile, 0o755); err != nil {
		log.Printf("profile: %v", err)
		return func() {}
	}
	kinds := []string{"profile", "allocs"} // CPU, and allocations over the same window
	done := make(chan struct{}, len(c.admins)*len(kinds))
	for i, admin := range c.admins {
		inst := string(rune('a' + i))
		if len(c.admins) == 1 {
			inst = "single"
		}
		for _, kind := range kinds {
			file := filepath.Join(e.profile, fmt.Sprintf("%s-%s-%s-%s.pprof", strings.ReplaceAll(c.name, "/", "-"), inst, scenario, kind))
			go func() {
				defer func() { done <- struct{}{} }()
				u := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", admin, kind, int(e.profileFor.Seconds()))
				resp, err := http.Get(u)
				if err != nil {
					log.Printf("profile %s: %v", u, err)
					return
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					log.Printf("profile %s: %s", u, resp.Status)
					return
				}
				f, err := os.Create(file)
				if err != nil {
					log.Printf("profile: %v", err)
					return
				}
				defer f.Close()
				if _, err := io.Copy(f, resp.Body); err == nil {
					log.Printf("%s profile of %s (%s) in %s", kind, c.name, admin, file)
				}
			}()
		}
	}
	return func() {
		for range cap(done) {
			<-done
		}
	}
}

// allocCounts are Caddy's cumulative allocation counters (every instance
// of a contender together), read from the admin endpoint's expvar.
type allocCounts struct {
	mallocs, bytes uint64
	ok             bool
}

func readAllocs(c *contender) allocCounts {
	var out allocCounts
	for _, admin := range c.admins {
		resp, err := http.Get("http://" + admin + "/debug/vars")
		if err != nil {
			return allocCounts{}
		}
		var v struct {
			Memstats struct {
				Mallocs, TotalAlloc uint64
			} `json:"memstats"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil || v.Memstats.Mallocs == 0 {
			return allocCounts{}
		}
		out.mallocs += v.Memstats.Mallocs
		out.bytes += v.Memstats.TotalAlloc
	}
	out.ok = len(c.admins) > 0
	return out
}

// perCall is what Caddy allocated per call between a and b (0, 0 when
// the counters could not be read).
func perCall(a, b allocCounts, calls int) (allocs, bytes float64) {
	if !a.ok || !b.ok || calls == 0 {
		return 0, 0
	}
	return float64(b.mallocs-a.mallocs) / float64(calls), float64(b.bytes-a.bytes) / float64(calls)
}
