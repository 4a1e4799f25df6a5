// Package caddyproc runs the project's Caddy (cmd/caddy: the standard
// modules, mcp_sse, mcp_stdio and the demo server) as real processes, for
// tests that need what one process cannot show: several instances, a
// process killed with SIGKILL, a restart.
//
// The binary is built once per test process (without -race: the tests
// watch it from outside). Each Proc runs it on a Caddyfile of the test's
// own, with HOME and the XDG directories in a temporary directory, its
// output in a file the test shows when it fails. Every wait has a
// deadline; whatever is still running when the test ends is killed by its
// PID.
package caddyproc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
)

// Deadlines of the waits.
const (
	startWait = 60 * time.Second
	stopWait  = 20 * time.Second
	killWait  = 10 * time.Second
	adminWait = 10 * time.Second
)

// logTail is how many lines of a process's log a failed test shows.
const logTail = 60

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/caddy once per test process and returns its path;
// a failed build fails the test.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Build is Binary for TestMain, which has no testing.TB.
func Build() (string, error) {
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "mcp-sse-caddyproc-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/caddy")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy in %s: %v\n%s", root, err, out)
		}
	})
	return binPath, buildErr
}

// RemoveBinary removes what Build built; call it from TestMain.
func RemoveBinary() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

// moduleRoot is the directory of the go.mod governing the working
// directory (a test runs in its package's directory).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if gomod := strings.TrimSpace(string(out)); err == nil && gomod != "" && gomod != os.DevNull {
		return filepath.Dir(gomod), nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("caddyproc: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Proc is one running Caddy.
type Proc struct {
	// Name labels the process in what a failed test shows (its log);
	// by default, its admin address and PID.
	Name string

	t      testing.TB
	cmd    *exec.Cmd
	admin  string
	dir    string
	logOut string
	exited chan struct{} // closed once the process has exited
	marker string
}

// Start writes caddyfile to a temporary file and runs
// `caddy run --config F --adapter caddyfile` on it. It returns once the
// admin endpoint (admin, host:port, which the Caddyfile's admin option
// must name) answers and every address of listen accepts connections.
// The process is killed, if still running, when the test ends; a failed
// test shows the end of its log.
func Start(t testing.TB, admin, caddyfile string, listen ...string) *Proc {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, admin: admin, dir: dir, logOut: filepath.Join(dir, "caddy.log"),
		exited: make(chan struct{}), marker: proctest.Marker()}
	out, err := os.Create(p.logOut)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, p.marker)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("starting caddy: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		out.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(killWait):
				t.Errorf("caddy %d still running %s after SIGKILL", p.PID(), killWait)
			}
		}
		if t.Failed() {
			t.Logf("--- %s log, its end:\n%s", p.label(), Tail(p.Log(), logTail))
		}
		proctest.NoneLeft(t, killWait, p.marker)
	})
	p.waitReady(listen, caddyfile)
	return p
}

// waitReady waits for the admin endpoint and the listeners.
func (p *Proc) waitReady(listen []string, caddyfile string) {
	p.t.Helper()
	deadline := time.Now().Add(startWait)
	client := &http.Client{Timeout: time.Second}
	ready := func() (bool, string) {
		resp, err := client.Get("http://" + p.admin + "/config/")
		if err != nil {
			return false, fmt.Sprintf("admin %s: %v", p.admin, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Sprintf("admin %s: GET /config/: %s", p.admin, resp.Status)
		}
		for _, addr := range listen {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return false, fmt.Sprintf("listener %s: %v", addr, err)
			}
			c.Close()
		}
		return true, ""
	}
	for {
		ok, why := ready()
		if ok {
			return
		}
		if p.Exited() {
			p.t.Fatalf("caddy exited before it was ready (%s): %v (its log follows); its Caddyfile:\n%s", why, p.cmd.ProcessState, caddyfile)
		}
		if time.Now().After(deadline) {
			// The Go runtime dumps every goroutine into the log the
			// cleanup shows, so a hang says where it hangs.
			_ = p.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.exited:
			case <-time.After(2 * time.Second):
			}
			p.t.Fatalf("caddy not ready within %s: %s", startWait, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// label names the process for the test's output.
func (p *Proc) label() string {
	if p.Name != "" {
		return fmt.Sprintf("%s (caddy, admin %s, pid %d)", p.Name, p.admin, p.PID())
	}
	return fmt.Sprintf("caddy (admin %s, pid %d)", p.admin, p.PID())
}

// PID is the process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Admin is the admin endpoint's host:port.
func (p *Proc) Admin() string { return p.admin }

// Log is what the process has written to stdout and stderr.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.logOut)
	return string(b)
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.exited }

// Kill9 sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill9() {
	p.t.Helper()
	if p.Exited() {
		p.t.Fatalf("caddy %d: Kill9 after it exited", p.PID())
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("caddy %d: SIGKILL: %v", p.PID(), err)
	}
	select {
	case <-p.exited:
	case <-time.After(killWait):
		p.t.Fatalf("caddy %d still running %s after SIGKILL", p.PID(), killWait)
	}
}

// Stop sends SIGTERM (Caddy shuts down gracefully) and waits for the
// exit. A process still running after the deadline dumps its goroutines
// into its log, is killed, and fails the test.
func (p *Proc) Stop() {
	p.t.Helper()
	if p.Exited() {
		p.t.Fatalf("caddy %d: Stop after it exited", p.PID())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("caddy %d: SIGTERM: %v", p.PID(), err)
	}
	select {
	case <-p.exited:
		return
	case <-time.After(stopWait):
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.exited:
	case <-time.After(2 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.t.Fatalf("caddy %d did not exit within %s of SIGTERM", p.PID(), stopWait)
}

// Freeze stops the process where it stands (SIGSTOP): its connections
// stay open, the kernel still accepts on its listeners, and nothing it
// would send goes out: a Caddy cut off, not dead. Thaw lets it go on.
func (p *Proc) Freeze() {
	p.t.Helper()
	p.signal(syscall.SIGSTOP, "SIGSTOP")
	// The signal is delivered to each thread as it next enters the
	// kernel: wait until every one has stopped.
	p.waitThreads("stopped", func(state byte) bool { return state == 'T' })
}

// Thaw lets a frozen process go on (SIGCONT).
func (p *Proc) Thaw() {
	p.t.Helper()
	p.signal(syscall.SIGCONT, "SIGCONT")
	p.waitThreads("running again", func(state byte) bool { return state != 'T' })
}

// waitThreads waits until every thread of the process is in a state for
// which ok holds, as /proc shows it (Linux).
func (p *Proc) waitThreads(what string, ok func(state byte) bool) {
	p.t.Helper()
	deadline := time.Now().Add(killWait)
	for {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.PID()))
		if err != nil {
			p.t.Fatalf("caddy %d: %v", p.PID(), err)
		}
		all := len(tasks) > 0
		for _, task := range tasks {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", p.PID(), task.Name()))
			if err != nil {
				continue // the thread is gone
			}
			// pid (comm) state …; comm may hold spaces.
			i := strings.LastIndexByte(string(stat), ')')
			if i < 0 || i+2 >= len(stat) || !ok(stat[i+2]) {
				all = false
				break
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("caddy %d: not every thread %s within %s", p.PID(), what, killWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *Proc) signal(sig syscall.Signal, name string) {
	p.t.Helper()
	if p.Exited() {
		p.t.Fatalf("caddy %d: %s after it exited", p.PID(), name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("caddy %d: %s: %v", p.PID(), name, err)
	}
}

// AdminDo sends one request to the admin endpoint and returns the status
// and body; it gives up after 10 s. Errors are the transport's.
func (p *Proc) AdminDo(method, path, body string) (int, string, error) {
	req, err := http.NewRequest(method, "http://"+p.admin+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: adminWait}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Goroutines is the process's goroutine count, from the first line of the
// admin endpoint's /debug/pprof/goroutine?debug=1 ("goroutine profile:
// total N").
func (p *Proc) Goroutines() (int, error) {
	code, body, err := p.AdminDo(http.MethodGet, "/debug/pprof/goroutine?debug=1", "")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("GET /debug/pprof/goroutine: %d %s", code, Tail(body, 5))
	}
	first, _, _ := strings.Cut(body, "\n")
	n, ok := strings.CutPrefix(first, "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile begins %q", first)
	}
	return strconv.Atoi(strings.TrimSpace(n))
}

// ConnsTo counts the process's established TCP connections to addr
// (IPv4 host:port), from /proc: its socket descriptors matched against
// the kernel's TCP tables of its network namespace. Linux only.
func (p *Proc) ConnsTo(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	ip := net.ParseIP(host).To4()
	pn, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		return 0, fmt.Errorf("caddyproc: ConnsTo wants an IPv4 host:port, not %q", addr)
	}
	// The tables print an address as the 32-bit word in the machine's
	// byte order, and the port as a number.
	v4 := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(ip), pn)
	mapped := fmt.Sprintf("0000000000000000FFFF0000%s", v4)

	inodes := map[string]bool{}
	fdDir := fmt.Sprintf("/proc/%d/fd", p.PID())
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return 0, err
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	n := 0
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", p.PID(), table))
		if err != nil {
			if table == "tcp6" {
				continue // no IPv6 in this kernel
			}
			return 0, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode …
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "01" || !inodes[fields[9]] {
				continue
			}
			if fields[2] == v4 || fields[2] == mapped {
				n++
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
