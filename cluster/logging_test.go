package cluster

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/redistest"
)

// TestRedisLogsRouted: a line go-redis logs (here, that it rounds a
// duration below its precision up to 1ms) reaches the function
// RouteRedisLogs names, not stderr.
func TestRedisLogsRouted(t *testing.T) {
	r := redistest.Start(t)
	var mu sync.Mutex
	var lines []string
	RouteRedisLogs(func(line string) {
		mu.Lock()
		lines = append(lines, line)
		mu.Unlock()
	})
	t.Cleanup(func() { RouteRedisLogs(nil) })
	n, err := Open(Config{URL: r.URL(), Prefix: "logs", Instance: "logs", Keys: testKeyring(t)}, nopEvents{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.rdb.Set(t.Context(), "logs:k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := n.rdb.PExpire(t.Context(), "logs:k", 500*time.Microsecond).Err(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, l := range lines {
		found = found || strings.Contains(l, "truncating to 1ms")
	}
	if !found {
		t.Fatalf("go-redis's line did not reach the routed logger; got %q", lines)
	}
}

type nopEvents struct{}

func (nopEvents) Doorbell(Doorbell)    {}
func (nopEvents) Control(Control)      {}
func (nopEvents) Subscribed()          {}
func (nopEvents) Acked(string, string) {}
