package clustertest

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpsse/caddy-mcp-sse/internal/caddyproc"
	"github.com/mcpsse/caddy-mcp-sse/internal/redistest"
	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
)

// TestClusterExample runs examples/cluster as the README gives it (its
// two Caddyfiles, with this test's ports for the example's) and calls the
// demo through the balancer, with POSTs crossing instances.
func TestClusterExample(t *testing.T) {
	dir := filepath.Join("..", "examples", "cluster")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	r := redistest.Start(t)
	// As run.sh exports it, for both instances.
	secret := newSecret()
	t.Setenv("MCP_CLUSTER_KEY", secret)
	port := func() string { return testport.Free(t) }
	lb, a, b, up, lbAdmin := port(), port(), port(), port(), port()

	balancer := read("balancer.Caddyfile")
	for from, to := range map[string]string{"2020": lbAdmin, "8080": lb, "8081": a, "8082": b, "9000": up} {
		if !strings.Contains(balancer, from) {
			t.Fatalf("balancer.Caddyfile no longer has port %s, which this test rewrites", from)
		}
		balancer = strings.ReplaceAll(balancer, from, to)
	}
	caddyproc.Start(t, "localhost:"+lbAdmin, balancer, "127.0.0.1:"+lb, "127.0.0.1:"+up)

	// The instances read Redis's URL from their environment, so that it
	// (and its password) stays out of the config the admin API shows.
	t.Setenv("REDIS_URL", r.URL())
	instance := strings.ReplaceAll(read("instance.Caddyfile"), "127.0.0.1:9000", "127.0.0.1:"+up)
	var insts []string
	for _, in := range []struct{ name, port string }{{"a", a}, {"b", b}} {
		admin := port()
		cfg := strings.NewReplacer("{$ADMIN}", admin, "{$PORT}", in.port, "{$INSTANCE}", in.name).Replace(instance)
		if strings.Contains(cfg, "{$") {
			t.Fatalf("instance.Caddyfile has a variable this test does not set:\n%s", cfg)
		}
		p := caddyproc.Start(t, "localhost:"+admin, cfg, "127.0.0.1:"+in.port)
		code, config, err := p.AdminDo(http.MethodGet, "/config/", "")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /config/ of instance %s: %d %v", in.name, code, err)
		}
		if strings.Contains(config, r.Addr()) || !strings.Contains(config, "{env.REDIS_URL}") {
			t.Errorf("instance %s: GET /config/ shows Redis's URL, want {env.REDIS_URL}: %s", in.name, config)
		}
		if strings.Contains(config, secret) || !strings.Contains(config, "{env.MCP_CLUSTER_KEY}") {
			t.Errorf("instance %s: GET /config/ shows the cluster secret, want {env.MCP_CLUSTER_KEY}: %s", in.name, config)
		}
		insts = append(insts, "http://localhost:"+in.port)
	}

	base := "http://localhost:" + lb
	s := openRaw(t, base, nil)
	defer s.close()
	s.initialize(t, base)
	for i, id := range []string{"e1", "e2", "e3", "e4"} {
		// Straight to each instance in turn: one of them does not hold
		// the stream.
		s.echo(t, insts[i%2], id, "through "+id)
	}
	s.echo(t, base, "e5", "through the balancer")
}
