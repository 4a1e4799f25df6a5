package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVanishedPeer: a client that disappears without closing its
// connection (no FIN, no RST: a pulled cable) is found and its session
// closed within a few seconds, not the kernel's quarter of an hour.
//
// Caddy runs in a network namespace of its own, reached over a veth pair
// on addresses of the test's own making (10.213.7.0/30, inside this
// sandbox); once the stream is up, the host end of the pair is taken
// down, and every packet either way is silently lost.
func TestVanishedPeer(t *testing.T) {
	pid := os.Getpid()
	ns := fmt.Sprintf("mcpsse-%d", pid)
	va, vb := fmt.Sprintf("mcpa%d", pid%100000), fmt.Sprintf("mcpb%d", pid%100000)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s(this test needs root, for ip netns and veth)", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", va).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	run("ip", "netns", "add", ns)
	run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
	run("ip", "link", "set", vb, "netns", ns)
	run("ip", "addr", "add", "10.213.7.1/30", "dev", va)
	run("ip", "link", "set", va, "up")
	run("ip", "netns", "exec", ns, "ip", "addr", "add", "10.213.7.2/30", "dev", vb)
	run("ip", "netns", "exec", ns, "ip", "link", "set", vb, "up")
	run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

	dir := t.TempDir()
	logPath := filepath.Join(dir, "caddy.log")
	cfg := fmt.Sprintf(`{
	admin 127.0.0.1:2019
	persist_config off
	auto_https off
	log {
		output file %s
		format json
	}
}

http://10.213.7.2:8080 {
	bind 10.213.7.2
	mcp_sse {
		keepalive 1s
		send_timeout 1s
	}
	mcp_demo
}
`, logPath)
	addr := "10.213.7.2:8080"
	startCaddy(t, dir, cfg, addr, "ip", "netns", "exec", ns)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /sse HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the endpoint: %v", err)
		}
		if strings.HasPrefix(line, "data: message?") {
			break
		}
	}

	// The peer vanishes: from here on nothing gets through either way.
	run("ip", "link", "set", va, "down")
	cut := time.Now()

	var reason string
	for reason == "" {
		if time.Since(cut) > 30*time.Second {
			t.Fatal("the session of a vanished peer was still open 30s later")
		}
		time.Sleep(200 * time.Millisecond)
		data, _ := os.ReadFile(logPath)
		for _, line := range strings.Split(string(data), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "session closed" {
				reason, _ = e["reason"].(string)
			}
		}
	}
	t.Logf("vanished peer's session closed %s after the cut (reason %s; keepalive 1s, send_timeout 1s, TCP_USER_TIMEOUT 2s)",
		time.Since(cut).Round(100*time.Millisecond), reason)
}
