package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
)

// tsclientDir holds the node scripts and their npm packages (scripts/test
// installs them).
var tsclientDir = filepath.Join("..", "testdata", "tsclient")

// checkNodePackages fails the test unless node and the npm packages the
// scripts import are installed: a missing install is a failure, never a
// skip, so CI cannot pass without it.
func checkNodePackages(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not found: %v", err)
	}
	for _, pkg := range []string{"@modelcontextprotocol/sdk", "eventsource"} {
		if _, err := os.Stat(filepath.Join(tsclientDir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("npm package %s not installed (run scripts/test, or npm ci --prefix %s): %v", pkg, tsclientDir, err)
		}
	}
}

// nodeScript is a script of testdata/tsclient under node, driven through
// its stdin and read line by line: each line a tag and one JSON object.
type nodeScript struct {
	t       *testing.T
	name    string
	stdin   io.WriteCloser
	lines   chan string
	stderr  *proctest.LockedBuffer
	exited  chan struct{} // closed once node has exited, with waitErr set
	waitErr error
}

// startNode runs script with args; it is killed, if still running, when
// the test ends, and at the latest after 120 s.
func startNode(t *testing.T, script string, args ...string) *nodeScript {
	t.Helper()
	checkNodePackages(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(tsclientDir, script)}, args...)...)
	n := &nodeScript{t: t, name: script, lines: make(chan string, 4096), stderr: &proctest.LockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = n.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n.stdin = stdin
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("node %s: %v", script, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			n.lines <- sc.Text()
		}
		close(n.lines)
		n.waitErr = cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		stdin.Close()
		cancel()
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("node %s still running 10s after it was killed", script)
		}
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", script, n.stderr.String())
		}
	})
	return n
}

// say writes one command line to the script.
func (n *nodeScript) say(line string) {
	n.t.Helper()
	if _, err := io.WriteString(n.stdin, line+"\n"); err != nil {
		n.t.Fatalf("writing %q to node: %v\nstderr: %s", line, err, n.stderr.String())
	}
}

// next returns the next line's tag and JSON.
func (n *nodeScript) next(within time.Duration) (string, []byte) {
	n.t.Helper()
	select {
	case line, ok := <-n.lines:
		if !ok {
			<-n.exited
			n.t.Fatalf("node %s exited early (%v)\nstderr: %s", n.name, n.waitErr, n.stderr.String())
		}
		tag, rest, _ := strings.Cut(line, " ")
		return tag, []byte(rest)
	case <-time.After(within):
		n.t.Fatalf("node %s printed nothing within %s\nstderr: %s", n.name, within, n.stderr.String())
	}
	panic("unreachable")
}

// expect reads the next line, which must have tag, into v.
func (n *nodeScript) expect(tag string, within time.Duration, v any) {
	n.t.Helper()
	got, data := n.next(within)
	if got != tag {
		n.t.Fatalf("node %s printed %s %s, want %s\nstderr: %s", n.name, got, data, tag, n.stderr.String())
	}
	if err := json.Unmarshal(data, v); err != nil {
		n.t.Fatalf("node %s's %s line %q: %v", n.name, tag, data, err)
	}
}

// quit asks the script to close, and checks it exits cleanly.
func (n *nodeScript) quit() {
	n.t.Helper()
	n.say("quit")
	n.stdin.Close()
	for {
		select {
		case _, ok := <-n.lines:
			if ok {
				continue
			}
			<-n.exited
			if n.waitErr != nil {
				n.t.Fatalf("node %s: %v\nstderr: %s", n.name, n.waitErr, n.stderr.String())
			}
			return
		case <-time.After(15 * time.Second):
			n.t.Fatalf("node %s did not exit within 15s of quit", n.name)
		}
	}
}
