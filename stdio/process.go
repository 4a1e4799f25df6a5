// Package stdio runs a stdio MCP server: one process, spoken to in
// newline-delimited JSON-RPC messages on its stdin and stdout, and ended
// the way the MCP specification asks (close stdin, wait, SIGTERM, wait,
// SIGKILL). Every process runs in a process group of its own, and the
// whole group is signalled, so the children a launcher such as npx or uvx
// starts end with it; so is every process that carries the session's
// marker (SessionVar) in its environment, so that descendants that left
// the group (setsid) end too. On Linux the process gets SIGKILL should
// this one die (see pdeathsig_linux.go), and this one reaps the orphans
// it adopts as subreaper. It knows nothing of Caddy or HTTP.
package stdio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of Config's limits.
const (
	DefaultMaxMessageSize = 4 << 20
	DefaultStopTimeout    = 5 * time.Second
	DefaultStderrMaxLine  = 1024
	DefaultStderrRate     = 20
	DefaultSkippedRate    = 20
)

// Config says what to run and how to talk to it.
type Config struct {
	// Command is the program, run directly (no shell); a name without a
	// slash is looked up in the PATH of the caller.
	Command string
	Args    []string
	// Env is the whole environment of the process; nil means the
	// caller's own. SessionVar is added to it.
	Env []string
	// Dir is the working directory; empty means the caller's.
	Dir string
	// MaxMessageSize bounds one stdout line, in bytes. A longer line ends
	// the process, with ErrMessageTooLarge as its exit's cause.
	MaxMessageSize int
	// StopTimeout is each of the two waits of Stop: after closing stdin,
	// and after SIGTERM.
	StopTimeout time.Duration

	// OnMessage receives each JSON-RPC message the process writes, in
	// order, from one goroutine. The slice is the receiver's to keep.
	OnMessage func(msg []byte)
	// OnSkipped receives the start (at most 256 bytes) of each stdout
	// line that is not a JSON-RPC message, at most SkippedRate a second
	// (with as many in a burst), as OnStderr does; the line is otherwise
	// ignored. suppressed is how many lines were dropped since the last
	// one delivered.
	OnSkipped   func(line []byte, suppressed int)
	SkippedRate int
	// OnStderr receives stderr lines, cut to StderrMaxLine bytes, at most
	// StderrRate a second (with as many in a burst); suppressed is how
	// many lines were dropped since the last one delivered. When the
	// stream ends, the last line dropped, if any, is delivered with the
	// count of those dropped before it.
	OnStderr      func(line string, suppressed int)
	StderrMaxLine int
	StderrRate    int

	// clock is the time the rate limits read; time.Now if nil (tests
	// set it).
	clock func() time.Time
}

// ErrMessageTooLarge is the cause of an exit forced by a stdout line over
// MaxMessageSize.
var ErrMessageTooLarge = errors.New("stdout line exceeds max_message_size")

// ErrClosed is returned by Send once the process's stdin is closed.
var ErrClosed = errors.New("stdin closed")

// How a process ended, as Exit.Stage says.
const (
	StageSelf  = ""        // it exited on its own
	StageStdin = "stdin"   // Stop closed its stdin and it exited
	StageTerm  = "sigterm" // it needed SIGTERM
	StageKill  = "sigkill" // it needed SIGKILL
)

// Exit is how a process ended.
type Exit struct {
	// Code is the exit status, or -1 when a signal ended it.
	Code int
	// Signal names the signal that ended it, if one did.
	Signal string
	// Stage says how far Stop had to go; StageSelf if it was not asked.
	Stage string
	// LastStderr is the last non-empty line it wrote to stderr.
	LastStderr string
	// Cause, if set, is why the process was ended from this side other
	// than by Stop (ErrMessageTooLarge).
	Cause error
}

// String describes the exit as a person reads it.
func (e Exit) String() string {
	s := fmt.Sprintf("exit status %d", e.Code)
	if e.Signal != "" {
		s = "killed by " + e.Signal
	}
	if e.Cause != nil {
		s = e.Cause.Error() + "; " + s
	}
	if e.LastStderr != "" {
		s += "; last stderr line: " + e.LastStderr
	}
	return s
}

// Process is one running command.
type Process struct {
	cfg     Config
	cmd     *exec.Cmd
	marker  string // SessionVar=token, in the environment of the whole tree
	started time.Time
	stdin   *os.File
	stdout  *os.File
	stderr  *os.File

	writeMu     sync.Mutex
	stdinClosed atomic.Bool
	stopOnce    sync.Once
	stage       atomic.Value // string
	cause       atomic.Pointer[error]
	lastStderr  atomic.Pointer[string]
	in, out     atomic.Int64

	readers sync.WaitGroup
	exited  chan struct{} // the leader is reaped
	done    chan struct{} // and its group is gone, and the readers are done
	exit    Exit
}

// Start runs the command. Its error names the command and the cause.
func Start(cfg Config) (*Process, error) {
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.StderrMaxLine <= 0 {
		cfg.StderrMaxLine = DefaultStderrMaxLine
	}
	if cfg.StderrRate <= 0 {
		cfg.StderrRate = DefaultStderrRate
	}
	if cfg.SkippedRate <= 0 {
		cfg.SkippedRate = DefaultSkippedRate
	}
	if cfg.clock == nil {
		cfg.clock = time.Now
	}
	becomeSubreaper()
	cmd := exec.Command(cfg.Command, cfg.Args...)
	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	marker := newTreeMarker()
	cmd.Env = append(env[:len(env):len(env)], marker)
	cmd.Dir = cfg.Dir
	// A group of its own: the group is what Stop signals, so a launcher's
	// children go with it, and a signal Caddy's terminal sends its own
	// group does not reach the servers.
	cmd.SysProcAttr = sysProcAttr()
	// The pipes are *os.File, handed to the child as they are, so Wait
	// runs no copying goroutine of its own; WaitDelay still bounds Wait
	// should that ever change, so a descendant holding a pipe can never
	// hold Wait.
	cmd.WaitDelay = cfg.StopTimeout

	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", cfg.Command, err)
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("starting %s: %w", cfg.Command, err)
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("starting %s: %w", cfg.Command, err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	err = startLeader(func() (int, error) {
		if err := startProcess(cmd); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	})
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("starting %s: %w", cfg.Command, err)
	}
	// The child has its own copies; the parent keeps only its ends, so
	// that stdout's EOF means every writer in the group is gone.
	inR.Close()
	outW.Close()
	errW.Close()

	p := &Process{
		cfg: cfg, cmd: cmd, marker: marker, started: time.Now(),
		stdin: inW, stdout: outR, stderr: errR,
		exited: make(chan struct{}), done: make(chan struct{}),
	}
	p.stage.Store(StageSelf)
	p.readers.Add(2)
	go p.readStdout()
	go p.readStderr()
	go p.wait()
	return p, nil
}

func (p *Process) now() time.Time { return p.cfg.clock() }

// PID is the process id, which is also its process group id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Started is when the process started.
func (p *Process) Started() time.Time { return p.started }

// Counts returns how many messages were written to the process (in) and
// read from it (out).
func (p *Process) Counts() (in, out int64) { return p.in.Load(), p.out.Load() }

// LastStderr is the last non-empty line the process wrote to stderr.
func (p *Process) LastStderr() string {
	if s := p.lastStderr.Load(); s != nil {
		return *s
	}
	return ""
}

// Done is closed once the process and its group are gone.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exit is how the process ended; valid once Done is closed.
func (p *Process) Exit() Exit {
	<-p.done
	return p.exit
}

// Send writes one message to the process's stdin as one line. A message
// holding a line break (a pretty-printed JSON object) is compacted first;
// timeout bounds a write the process does not read.
func (p *Process) Send(msg []byte, timeout time.Duration) error {
	msg = bytes.TrimSpace(msg)
	if bytes.ContainsAny(msg, "\r\n") {
		var buf bytes.Buffer
		if err := json.Compact(&buf, msg); err != nil {
			return fmt.Errorf("message is not JSON: %w", err)
		}
		msg = buf.Bytes()
	}
	line := make([]byte, len(msg)+1)
	copy(line, msg)
	line[len(msg)] = '\n'

	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	if p.stdinClosed.Load() {
		return ErrClosed
	}
	if timeout > 0 {
		_ = p.stdin.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := p.stdin.Write(line); err != nil {
		if p.stdinClosed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("writing to stdin: %w", err)
	}
	p.in.Add(1)
	return nil
}

// closeStdin closes the write end of stdin without waiting for a Send
// blocked on a full pipe: closing the file ends that write.
func (p *Process) closeStdin() {
	if p.stdinClosed.CompareAndSwap(false, true) {
		p.stdin.Close()
	}
}

// Stop ends the process as the MCP specification asks: close its stdin
// and wait StopTimeout for it to exit, then SIGTERM its group and wait as
// long again, then SIGKILL the group. It returns once the process and its
// group are gone. It may be called more than once, from any goroutine.
func (p *Process) Stop() Exit {
	p.StopAsync()
	return p.Exit()
}

// StopAsync begins Stop and returns at once.
func (p *Process) StopAsync() {
	p.stopOnce.Do(func() { go p.stop() })
}

func (p *Process) stop() {
	p.stage.Store(StageStdin)
	p.closeStdin()
	if p.waitExited(p.cfg.StopTimeout) {
		return
	}
	p.stage.Store(StageTerm)
	p.signalTree(syscall.SIGTERM)
	if p.waitExited(p.cfg.StopTimeout) {
		return
	}
	p.stage.Store(StageKill)
	p.signalTree(syscall.SIGKILL)
}

func (p *Process) waitExited(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.exited:
		return true
	case <-t.C:
		return false
	}
}

// wait reaps the process, then ends what it left in its group, then waits
// for the readers, so that Done means nothing of it runs any more.
func (p *Process) wait() {
	err := p.cmd.Wait()
	leaderDone(p.PID())
	close(p.exited)
	p.endTree()
	p.closeStdin()

	// The readers end at EOF, once every writer of the pipes is closed.
	// A descendant that endTree could not reach (one that dropped the
	// marker from its environment and left the group) may still hold
	// one: after a bound, the read ends are closed under it.
	readersDone := make(chan struct{})
	go func() {
		p.readers.Wait()
		close(readersDone)
	}()
	select {
	case <-readersDone:
	case <-time.After(p.cfg.StopTimeout):
		p.stdout.Close()
		p.stderr.Close()
		<-readersDone
	}
	p.stdout.Close()
	p.stderr.Close()

	exit := Exit{Code: -1, Stage: p.stage.Load().(string), LastStderr: p.LastStderr()}
	if c := p.cause.Load(); c != nil {
		exit.Cause = *c
	}
	switch ps := p.cmd.ProcessState; {
	case ps == nil:
		exit.Cause = errors.Join(exit.Cause, err)
	case ps.Sys().(syscall.WaitStatus).Signaled():
		exit.Signal = signalName(ps.Sys().(syscall.WaitStatus).Signal())
	default:
		exit.Code = ps.ExitCode()
	}
	p.exit = exit
	close(p.done)
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	default:
		return s.String()
	}
}
