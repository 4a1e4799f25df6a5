// Package redistest runs a real redis-server for a test: on a free
// 127.0.0.1 port, with its data in a directory of the test's own, in the
// foreground (not daemonized) so the test knows its process and ends it.
//
// The server keeps an append-only file and no snapshots, so Stop and
// Restart keep every key, as a Redis restarted in production keeps them;
// and it evicts nothing (noeviction), as the README asks of a cluster's
// Redis. Tests talk to it with Do, raw RESP on a TCP connection, so the
// package needs no Redis client.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
)

// Deadlines of the waits; a server that misses one fails the test.
const (
	startWait = 15 * time.Second
	stopWait  = 10 * time.Second
	ioWait    = 5 * time.Second
)

// Server is one redis-server process, or its data while it is stopped.
type Server struct {
	t    testing.TB
	bin  string
	port string
	dir  string // --dir: the append-only file
	log  string // its stdout and stderr, across restarts

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited
}

// Start runs redis-server and waits until it answers PING. The test fails
// if redis-server is not installed (scripts/test installs it) or does not
// answer in time; the server is stopped, by its PID, when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (scripts/test installs it: apt-get install redis-server): %v", err)
	}
	s := &Server{t: t, bin: bin, port: testport.Free(t), dir: t.TempDir()}
	s.log = filepath.Join(t.TempDir(), "redis.log")
	t.Cleanup(func() {
		s.mu.Lock()
		cmd, exited := s.cmd, s.exited
		s.mu.Unlock()
		if cmd != nil && !closed(exited) {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("redis-server %s log (tail):\n%s", s.Addr(), tail(s.Log(), 40))
		}
	})
	s.start()
	return s
}

// URL is the server's address as the cluster option takes it, database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + s.port }

// Port is the port alone.
func (s *Server) Port() string { return s.port }

// PID is the running process's, or 0 while it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || closed(s.exited) {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log is what the server has written to stdout and stderr, every run of it.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// closed reports whether ch is closed: whether a process has exited.
func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// start runs the process and waits for PING.
func (s *Server) start() {
	s.t.Helper()
	out, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Close()
	fmt.Fprintf(out, "--- redistest: starting redis-server on %s at %s\n", s.Addr(), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(s.bin,
		"--port", s.port,
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--appendonly", "yes",
		"--save", "",
		"--maxmemory-policy", "noeviction",
		"--logfile", "",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(startWait)
	for {
		reply, err := s.Do("PING")
		if err == nil && reply == "PONG" {
			return
		}
		select {
		case <-exited:
			s.t.Fatalf("redis-server on %s exited before answering PING (%v); log:\n%s", s.Addr(), cmd.ProcessState, tail(s.Log(), 40))
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer PING within %s: %q %v", s.Addr(), startWait, reply, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM (redis-server writes its append-only file and exits)
// and waits for the exit.
func (s *Server) Stop() {
	s.t.Helper()
	s.signal(syscall.SIGTERM, "SIGTERM")
}

// Kill sends SIGKILL and waits for the exit. What the server had not yet
// written to its append-only file (it syncs it every second) may be lost.
func (s *Server) Kill() {
	s.t.Helper()
	s.signal(syscall.SIGKILL, "SIGKILL")
}

func (s *Server) signal(sig syscall.Signal, name string) {
	s.t.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil || closed(exited) {
		s.t.Fatalf("redis-server on %s: %s while it is not running", s.Addr(), name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redis-server %d: %s: %v", cmd.Process.Pid, name, err)
	}
	select {
	case <-exited:
	case <-time.After(stopWait):
		_ = cmd.Process.Kill()
		<-exited
		s.t.Fatalf("redis-server %d did not exit within %s of %s (killed)", cmd.Process.Pid, stopWait, name)
	}
}

// Restart runs the server again on the same port and directory, after Stop
// or Kill, so it comes back with the data it had kept; it returns once the
// server answers PING (after loading that data).
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	running := s.cmd != nil && !closed(s.exited)
	s.mu.Unlock()
	if running {
		s.t.Fatalf("redis-server on %s: Restart while it is running (Stop it first)", s.Addr())
	}
	s.start()
}

// Do sends one command and returns its reply as text: a status reply or an
// integer as it is, a bulk string's content, an array's elements one a
// line (nested arrays flattened), "" for a null. An error reply is an
// error, as is a connection that fails or takes longer than 5 s.
func (s *Server) Do(args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("redistest: Do with no command")
	}
	c, err := net.DialTimeout("tcp", s.Addr(), ioWait)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioWait))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

// readReply reads one RESP2 reply.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("redistest: empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("redistest: bulk length %q", line)
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("redistest: array length %q", line)
		}
		items := make([]string, 0, max(n, 0))
		for range n {
			item, err := readReply(r)
			if err != nil {
				return "", err
			}
			items = append(items, item)
		}
		return strings.Join(items, "\n"), nil
	default:
		return "", fmt.Errorf("redistest: unknown reply %q", line)
	}
}

// Keys lists the keys matching pattern (KEYS: for tests, on small data).
func (s *Server) Keys(pattern string) ([]string, error) {
	reply, err := s.Do("KEYS", pattern)
	if err != nil || reply == "" {
		return nil, err
	}
	return strings.Split(reply, "\n"), nil
}

// Clients is CLIENT LIST, one line a connection, this query's own
// connection left out.
func (s *Server) Clients() ([]string, error) {
	reply, err := s.Do("CLIENT", "LIST")
	if err != nil {
		return nil, err
	}
	var clients []string
	for _, l := range strings.Split(strings.TrimSpace(reply), "\n") {
		// CLIENT LIST shows the connection asking as the one running it.
		if l != "" && !strings.Contains(l, " cmd=client|list ") {
			clients = append(clients, l)
		}
	}
	return clients, nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
