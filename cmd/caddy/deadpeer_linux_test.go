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
// closed within a few seconds, not the kernel's quarter of an hour, as
// client_gone: the kernel fails the socket (TCP_USER_TIMEOUT), which ends
// the request's context.
//
// Caddy runs in a network namespace of its own, reached over a veth pair
// on a /30 of the test's own making; once the stream is up, the host end
// of the pair is taken down, and every packet either way is silently lost.
// The namespace, the interfaces and the subnet are derived from the
// process id, so that two runs at once do not collide.
func TestVanishedPeer(t *testing.T) {
	pid := os.Getpid()
	ns := fmt.Sprintf("mcpsse-%d", pid)
	va, vb := fmt.Sprintf("mcpa%d", pid), fmt.Sprintf("mcpb%d", pid)
	hostIP, peerIP := freeSubnet(t, pid)
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
	run("ip", "addr", "add", hostIP+"/30", "dev", va)
	run("ip", "link", "set", va, "up")
	run("ip", "netns", "exec", ns, "ip", "addr", "add", peerIP+"/30", "dev", vb)
	run("ip", "netns", "exec", ns, "ip", "link", "set", vb, "up")
	run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

	dir := t.TempDir()
	logPath := filepath.Join(dir, "caddy.log")
	// Nothing else listens in the namespace; the ports are free ones all
	// the same, so that no address in this test is fixed.
	port, adminPort := freePort(t), freePort(t)
	addr := net.JoinHostPort(peerIP, port)
	cfg := fmt.Sprintf(`{
	admin 127.0.0.1:%s
	persist_config off
	auto_https off
	log {
		output file %s
		format json
	}
}

http://%s {
	bind %s
	mcp_sse {
		keepalive 1s
		send_timeout 1s
		resume_window off
	}
	mcp_demo
}
`, adminPort, logPath, addr, peerIP)
	startCaddy(t, dir, cfg, addr, "ip", "netns", "exec", ns)
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
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
	if reason != "client_gone" {
		t.Fatalf("the vanished peer's session closed as %q, want client_gone", reason)
	}
	t.Logf("vanished peer's session closed %s after the cut (reason %s; keepalive 1s, send_timeout 1s, TCP_USER_TIMEOUT 2s)",
		time.Since(cut).Round(100*time.Millisecond), reason)
}

// freeSubnet picks a /30 in 10.213.0.0/16 for the test's veth pair, from
// pid onwards, that no interface of the host has an address in, and
// returns its host and peer addresses.
func freeSubnet(t *testing.T, pid int) (host, peer string) {
	t.Helper()
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr show: %v\n%s", err, out)
	}
	for i := range 16384 {
		block := (pid + i) % 16384 * 4 // the /30's offset in the /16
		prefix := fmt.Sprintf("10.213.%d.", block/256)
		used := false
		for _, line := range strings.Split(string(out), "\n") {
			for n := range 4 {
				used = used || strings.Contains(line, fmt.Sprintf(" %s%d/", prefix, block%256+n))
			}
		}
		if !used {
			return fmt.Sprintf("%s%d", prefix, block%256+1), fmt.Sprintf("%s%d", prefix, block%256+2)
		}
	}
	t.Fatal("no free /30 in 10.213.0.0/16")
	return "", ""
}
