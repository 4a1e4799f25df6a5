// Package proctest helps tests that start processes: it builds the test
// stdio server once, marks the processes a test starts, finds in /proc
// any of them still there, and holds their output while they write it.
package proctest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// MarkerVar is the environment variable whose value marks a test's
// processes; children inherit it. Its LC_ prefix puts it in the short
// list of variables mcp_stdio's processes inherit by default (LC_*, as
// a locale setting is), so a Caddy the tests start hands it on without
// an inherit_env line; the tests of what is not inherited use other
// names.
const MarkerVar = "LC_MCP_STDIO_TEST_MARK"

// Marker returns a fresh marker, as the KEY=VALUE its processes carry.
func Marker() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return MarkerVar + "=" + hex.EncodeToString(b)
}

// Left lists the processes still in /proc whose environment holds
// marker or whose process group is one of groups, as "pid (comm) state".
func Left(marker string, groups ...int) []string {
	entries, _ := os.ReadDir("/proc")
	var left []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces.
		end := bytes.LastIndexByte(stat, ')')
		if end < 0 {
			continue
		}
		fields := strings.Fields(string(stat[end+1:]))
		if len(fields) < 3 {
			continue
		}
		pgrp, _ := strconv.Atoi(fields[2])
		hit := false
		for _, g := range groups {
			hit = hit || pgrp == g
		}
		if !hit && marker != "" {
			env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
			hit = bytes.Contains(env, append([]byte(marker), 0))
		}
		if hit {
			left = append(left, fmt.Sprintf("%d %s %s", pid, stat[bytes.IndexByte(stat, '('):end+1], fields[0]))
		}
	}
	return left
}

// NoneLeft fails the test unless, within wait, no process of marker or of
// groups is left.
func NoneLeft(t testing.TB, wait time.Duration, marker string, groups ...int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		left := Left(marker, groups...)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			killMarked(marker)
			t.Fatalf("processes left behind after %s: %v", wait, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Server builds internal/stdioserver once per test binary and returns its
// path. The binary stays in a temporary directory RemoveAll removes.
func Server(t testing.TB) string {
	t.Helper()
	path, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Build is Server for TestMain, which has no testing.TB.
func Build() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcp-stdioserver-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "stdioserver")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/mcpsse/caddy-mcp-sse/internal/stdioserver")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build stdioserver: %v\n%s", err, out)
		}
	})
	return binPath, buildErr
}

// RemoveAll removes what Server built; call it from TestMain.
func RemoveAll() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

// killMarked kills, by pid, the processes that carry marker: a failed
// test must not leave its processes to the next.
func killMarked(marker string) {
	if marker == "" {
		return
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.Contains(env, append([]byte(marker), 0)) {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	}
}

// LockedBuffer is a process's output (an exec.Cmd's Stdout or Stderr),
// written by the process while the test reads it.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
