package stdio

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.RemoveAll()
	os.Exit(code)
}

// server is a running test stdio server and what it said.
type server struct {
	p        *Process
	marker   string
	messages chan []byte
	mu       sync.Mutex
	skipped  []string
	stderr   []string
	// how many lines the rate limits reported suppressed, in all
	skippedSuppressed, stderrSuppressed int
}

func start(t *testing.T, cfg Config, flags ...string) *server {
	t.Helper()
	cfg.Command = proctest.Server(t)
	cfg.Args = flags
	return startCommand(t, cfg, func(start func()) { start() })
}

// startCommand starts cfg's command, the Start call run by launch, with
// the test's marker added to its environment.
func startCommand(t *testing.T, cfg Config, launch func(start func())) *server {
	t.Helper()
	s := &server{marker: proctest.Marker(), messages: make(chan []byte, 100)}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	cfg.Env = append(cfg.Env, s.marker)
	cfg.OnMessage = func(m []byte) { s.messages <- m }
	cfg.OnSkipped = func(l []byte, suppressed int) {
		s.mu.Lock()
		s.skipped = append(s.skipped, string(l))
		s.skippedSuppressed += suppressed
		s.mu.Unlock()
	}
	cfg.OnStderr = func(l string, suppressed int) {
		s.mu.Lock()
		s.stderr = append(s.stderr, l)
		s.stderrSuppressed += suppressed
		s.mu.Unlock()
	}
	var p *Process
	var err error
	launch(func() { p, err = Start(cfg) })
	if err != nil {
		t.Fatal(err)
	}
	s.p = p
	t.Cleanup(func() {
		stopWithin(t, p, 20*time.Second)
		proctest.NoneLeft(t, 5*time.Second, s.marker, p.PID())
	})
	return s
}

func (s *server) send(t *testing.T, msg string) {
	t.Helper()
	if err := s.p.Send([]byte(msg), time.Second); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// next returns the next message the server wrote, decoded.
func (s *server) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m := <-s.messages:
		var v map[string]any
		if err := json.Unmarshal(m, &v); err != nil {
			t.Fatalf("message %s: %v", m, err)
		}
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no message from the server within 10s")
		return nil
	}
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

func (s *server) handshake(t *testing.T) {
	t.Helper()
	s.send(t, initialize)
	if m := s.next(t); m["id"] != float64(1) || m["result"] == nil {
		t.Fatalf("initialize answered %v", m)
	}
	s.send(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// stopWithin stops p and fails the test if that takes longer than d, in
// which case it kills what is left of the test's processes.
func stopWithin(t *testing.T, p *Process, d time.Duration) Exit {
	t.Helper()
	p.StopAsync()
	select {
	case <-p.Done():
		return p.Exit()
	case <-time.After(d):
		_ = syscall.Kill(p.PID(), syscall.SIGKILL)
		t.Fatalf("stop did not end the process within %s", d)
		return Exit{}
	}
}

func waitExit(t *testing.T, p *Process, d time.Duration) Exit {
	t.Helper()
	select {
	case <-p.Done():
		return p.Exit()
	case <-time.After(d):
		t.Fatalf("process still running after %s", d)
		return Exit{}
	}
}

func TestRoundTripAndStop(t *testing.T) {
	s := start(t, Config{StopTimeout: 2 * time.Second})
	s.handshake(t)
	// A pretty-printed message is sent as one line.
	s.send(t, "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 2,\n  \"method\": \"tools/call\",\n  \"params\": {\"name\": \"echo\", \"arguments\": {\"text\": \"a\\nb\"}}\n}")
	m := s.next(t)
	if m["id"] != float64(2) || !strings.Contains(toJSON(m["result"]), `a\nb`) {
		t.Fatalf("echo answered %v", m)
	}
	start := time.Now()
	exit := stopWithin(t, s.p, 5*time.Second)
	if exit.Stage != StageStdin || exit.Code != 0 || exit.Signal != "" {
		t.Fatalf("exit %+v, want a clean exit once stdin closed", exit)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("stop took %s for a server that exits when stdin closes", took)
	}
	if in, out := s.p.Counts(); in != 3 || out != 2 {
		t.Errorf("counts in %d out %d, want 3 and 2", in, out)
	}
	if err := s.p.Send([]byte(`{"jsonrpc":"2.0","method":"x"}`), time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("send after stop: %v, want ErrClosed", err)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestBannerOnStdoutIsSkipped(t *testing.T) {
	s := start(t, Config{}, "-banner", "Server v1 ready on stdio")
	s.handshake(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.skipped) != 1 || s.skipped[0] != "Server v1 ready on stdio" {
		t.Fatalf("skipped lines %q, want the banner", s.skipped)
	}
}

func TestExitMidCall(t *testing.T) {
	s := start(t, Config{})
	s.handshake(t)
	s.send(t, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"crash","arguments":{"code":7}}}`)
	exit := waitExit(t, s.p, 10*time.Second)
	if exit.Code != 7 || exit.Stage != StageSelf || !strings.Contains(exit.LastStderr, "crashing on request") {
		t.Fatalf("exit %+v, want status 7 on its own with the last stderr line", exit)
	}
	if !strings.Contains(exit.String(), "exit status 7") || !strings.Contains(exit.String(), "crashing on request") {
		t.Errorf("exit described as %q", exit.String())
	}
}

func TestStopEscalates(t *testing.T) {
	tests := []struct {
		name   string
		flags  []string
		stage  string
		signal string
	}{
		{"ignores stdin close", []string{"-ignore-stdin-close"}, StageTerm, "SIGTERM"},
		{"ignores SIGTERM", []string{"-ignore-stdin-close", "-ignore-sigterm"}, StageKill, "SIGKILL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const stop = 300 * time.Millisecond
			s := start(t, Config{StopTimeout: stop}, tc.flags...)
			s.handshake(t)
			begin := time.Now()
			exit := stopWithin(t, s.p, 20*stop)
			took := time.Since(begin)
			if exit.Stage != tc.stage || exit.Signal != tc.signal {
				t.Fatalf("exit %+v, want stage %s and %s", exit, tc.stage, tc.signal)
			}
			if took > 10*stop {
				t.Errorf("stop took %s with stop_timeout %s", took, stop)
			}
			proctest.NoneLeft(t, 2*time.Second, s.marker, s.p.PID())
		})
	}
}

func TestChildOfItsOwnIsEnded(t *testing.T) {
	s := start(t, Config{StopTimeout: time.Second}, "-child")
	s.handshake(t)
	if left := proctest.Left(s.marker); len(left) != 2 {
		t.Fatalf("want the server and its child running, found %v", left)
	}
	exit := stopWithin(t, s.p, 10*time.Second)
	if exit.Stage != StageStdin {
		t.Errorf("exit %+v: the server itself exits when stdin closes", exit)
	}
	// The child held the server's stdout: Stop returned, so it is gone.
	proctest.NoneLeft(t, 0, s.marker, s.p.PID())
}

func TestChildLeftByCrashIsEnded(t *testing.T) {
	s := start(t, Config{StopTimeout: time.Second}, "-child")
	s.handshake(t)
	s.send(t, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"crash"}}`)
	exit := waitExit(t, s.p, 10*time.Second)
	if exit.Code != 3 {
		t.Fatalf("exit %+v", exit)
	}
	proctest.NoneLeft(t, 0, s.marker, s.p.PID())
}

func TestCommandNotFound(t *testing.T) {
	_, err := Start(Config{Command: "no-such-mcp-server-xyz"})
	if err == nil || !strings.Contains(err.Error(), "no-such-mcp-server-xyz") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("error %v, want one naming the command and the cause", err)
	}
}

func TestLineOverMaxMessageSize(t *testing.T) {
	s := start(t, Config{MaxMessageSize: 1000, StopTimeout: time.Second}, "-big-line", "2000")
	exit := waitExit(t, s.p, 10*time.Second)
	if !errors.Is(exit.Cause, ErrMessageTooLarge) || exit.Stage != StageStdin {
		t.Fatalf("exit %+v, want ErrMessageTooLarge and a stop", exit)
	}
}

func TestStderrBounded(t *testing.T) {
	s := start(t, Config{StderrRate: 5, StderrMaxLine: 8}, "-stderr-lines", "100")
	s.handshake(t)
	// stderr is a pipe of its own, read by its own goroutine: the
	// handshake on stdout says nothing of how far it got. Wait until it
	// read the server's last line (LastStderr) and delivered one.
	var got []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		got = append(got[:0], s.stderr...)
		s.mu.Unlock()
		if len(got) > 0 && s.p.LastStderr() == "stderr l" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 10s: %d stderr lines delivered, last line read %q", len(got), s.p.LastStderr())
		}
	}
	if len(got) > 10 {
		t.Fatalf("%d stderr lines delivered (rate 5/s): %q", len(got), got)
	}
	for _, l := range got {
		if len(l) > 8 {
			t.Errorf("stderr line %q longer than 8 bytes", l)
		}
	}
	if last := s.p.LastStderr(); last != "stderr l" {
		t.Errorf("last stderr line %q", last)
	}
}

func TestReadLine(t *testing.T) {
	tests := []struct {
		name  string
		input string
		max   int
		want  []string
		err   error
	}{
		{"lines", "a\nbb\n", 10, []string{"a", "bb"}, nil},
		{"unterminated last", "a\nbb", 10, []string{"a", "bb"}, nil},
		{"exactly max", "abcd\n", 4, []string{"abcd"}, nil},
		{"over max", "abcde\n", 4, nil, errLineTooLong},
		{"over max unterminated", "abcdefgh", 4, nil, errLineTooLong},
		// Longer than the reader's buffer (16): read in fragments, each
		// under max; the line's length is what counts.
		{"over max across fragments", strings.Repeat("a", 40) + "\n", 20, nil, errLineTooLong},
		{"under max across fragments", strings.Repeat("a", 40) + "\n", 40, []string{strings.Repeat("a", 40)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.input), 16)
			var got []string
			for {
				line, err := readLine(br, tc.max)
				if errors.Is(err, errLineTooLong) {
					if tc.err == nil {
						t.Fatalf("unexpected %v", err)
					}
					return
				}
				if len(line) > 0 {
					got = append(got, string(line))
				}
				if err != nil {
					break
				}
			}
			if tc.err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q (err %v)", got, tc.want, tc.err)
			}
		})
	}
}
