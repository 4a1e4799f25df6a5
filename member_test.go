package mcpsse

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/internal/redistest"
)

// TestMembersStartAtOnce joins many members to one Redis at once. The
// node delivers its first event (the subscription's confirmation) from a
// goroutine Open starts, which may run before loadMember has set the
// member's node: each member must be whole before it handles an event.
// Under -race, a member read before it is whole fails the test even when
// the timing spares the nil pointer.
func TestMembersStartAtOnce(t *testing.T) {
	r := redistest.Start(t)
	const n = 24
	var wg sync.WaitGroup
	got := make([]*clusterMember, n)
	errs := make([]error, n)
	keys := make([]string, n)
	for i := range n {
		keys[i] = fmt.Sprintf("start-at-once-%d", i)
		wg.Go(func() {
			cfg := cluster.Config{URL: r.URL(), Prefix: "startonce", Instance: keys[i], Lease: 3 * time.Second, Keys: testClusterKeys(t)}
			got[i], errs[i] = loadMember(keys[i], cfg, zap.NewNop())
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("member %d: %v", i, errs[i])
		}
	}
	defer func() {
		for _, k := range keys {
			_, _ = members.Delete(k)
		}
	}()
	// Every member handled its subscription: its node answers, and it
	// renews (which reads the node) without failing.
	deadline := time.Now().Add(10 * time.Second)
	for i, m := range got {
		for {
			ok, err := m.node.Listening(t.Context(), keys[i])
			if err == nil && ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member %d is not subscribed: %v %v", i, ok, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		m.refresh()
	}
}

// TestMemberRoutesRedisLogs: once a member has joined, what go-redis
// logs (any client of the process: it has one logger) is in the
// member's log, named cluster.redis, not on stderr.
func TestMemberRoutesRedisLogs(t *testing.T) {
	r := redistest.Start(t)
	core, logs := observer.New(zap.DebugLevel)
	cfg := cluster.Config{URL: r.URL(), Prefix: "routelogs", Instance: "routelogs", Lease: 3 * time.Second, Keys: testClusterKeys(t)}
	if _, err := loadMember("routelogs", cfg, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = members.Delete("routelogs") }()
	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	// go-redis rounds a duration below a millisecond up, and says so.
	if err := c.PExpire(t.Context(), "routelogs:k", 500*time.Microsecond).Err(); err != nil {
		t.Fatal(err)
	}
	got := logs.FilterLoggerName("cluster.redis").FilterMessageSnippet("truncating to 1ms").Len()
	if got != 1 {
		t.Fatalf("go-redis's line in the member's log %d times, want once; log: %v", got, logs.All())
	}
}

// TestMemberRefusesEvictingRedis: an instance does not join a cluster
// whose Redis may evict keys (the error says which policy and what to
// do), unless its config accepts eviction; one whose Redis does not
// answer yet joins (the policy is read once it answers).
func TestMemberRefusesEvictingRedis(t *testing.T) {
	r := redistest.Start(t)
	if _, err := r.Do("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"); err != nil {
		t.Fatal(err)
	}
	cfg := cluster.Config{URL: r.URL(), Prefix: "evict", Instance: "evict-1", Lease: 3 * time.Second, Keys: testClusterKeys(t)}
	_, err := loadMember("evict-1", cfg, zap.NewNop())
	if err == nil {
		_, _ = members.Delete("evict-1")
		t.Fatal("joined a cluster whose Redis evicts (allkeys-lru)")
	}
	if !strings.Contains(err.Error(), "allkeys-lru") || !strings.Contains(err.Error(), "noeviction") || !strings.Contains(err.Error(), "allow_eviction") {
		t.Errorf("error %q does not name the policy, noeviction and allow_eviction", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		clients, err := r.Clients()
		if err == nil && len(clients) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refused member left connections to Redis: %v %v", clients, err)
		}
	}

	cfg.Instance, cfg.AllowEviction = "evict-2", true
	if _, err := loadMember("evict-2", cfg, zap.NewNop()); err != nil {
		t.Fatalf("allow_eviction: %v", err)
	}
	_, _ = members.Delete("evict-2")

	r.Stop()
	cfg.Instance, cfg.AllowEviction = "evict-3", false
	if _, err := loadMember("evict-3", cfg, zap.NewNop()); err != nil {
		t.Fatalf("Redis down at start: %v", err)
	}
	_, _ = members.Delete("evict-3")
}
