//go:build linux

package stdio

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
)

// skippedLine waits for a stdout line (not JSON-RPC, so skipped) that
// starts with prefix and returns the rest of it.
func (s *server) skippedLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		for _, l := range s.skipped {
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				s.mu.Unlock()
				return rest
			}
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no stdout line %q within 10s", prefix)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// goneWithin fails the test unless process pid has left /proc (exited and
// been reaped, not a zombie) within d.
func goneWithin(t *testing.T, pid int, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			state := procState(pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("%s (pid %d) still in /proc after %s, state %c", what, pid, d, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: %v", name, err)
	}
	return p
}

// TestTreeEndedWhenServerExits: a server starts a helper that leaves its
// session and process group (setsid) and one that stays in the group but
// drops its environment (env -i), both ignoring SIGTERM, then exits. The
// session's end reaches both: the first through the marker in its
// environment, the second through the group, the last SIGKILL hitting
// each; and both, orphans of this process (the subreaper), are reaped.
func TestTreeEndedWhenServerExits(t *testing.T) {
	sleep, setsid, env := lookPath(t, "sleep"), lookPath(t, "setsid"), lookPath(t, "env")
	script := `trap "" TERM
"$1" sh -c 'echo "setsid $$"; exec "$0" 1000' "$3" &
"$2" -i sh -c 'echo "group $$"; exec "$0" 1000' "$3" &
read go
exit 3`
	s := startCommand(t, Config{
		Command:     "sh",
		Args:        []string{"-c", script, "sh", setsid, env, sleep},
		StopTimeout: 300 * time.Millisecond,
	}, func(start func()) { start() })
	leader := s.p.PID()
	setsidPID, _ := strconv.Atoi(s.skippedLine(t, "setsid "))
	groupPID, _ := strconv.Atoi(s.skippedLine(t, "group "))
	if setsidPID == 0 || groupPID == 0 {
		t.Fatalf("pids %d %d", setsidPID, groupPID)
	}
	// The premises: one left the group, the other dropped the marker.
	if pgid, _ := syscall.Getpgid(setsidPID); pgid == leader {
		t.Fatalf("the setsid helper %d is still in the server's group", setsidPID)
	}
	if pgid, _ := syscall.Getpgid(groupPID); pgid != leader {
		t.Fatalf("the env -i helper %d is in group %d, not the server's %d", groupPID, pgid, leader)
	}
	if carries(groupPID, s.p.marker) || !carries(setsidPID, s.p.marker) {
		t.Fatalf("markers: env -i helper %v, setsid helper %v", carries(groupPID, s.p.marker), carries(setsidPID, s.p.marker))
	}

	s.send(t, `{"go":1}`) // the server exits on its own
	exit := waitExit(t, s.p, 20*time.Second)
	if exit.Code != 3 || exit.Stage != StageSelf {
		t.Fatalf("exit %+v, want status 3 on its own", exit)
	}
	// Done means the tree is gone; reaped a moment later at most.
	proctest.NoneLeft(t, 0, s.marker, leader)
	goneWithin(t, setsidPID, 5*time.Second, "the setsid helper")
	goneWithin(t, groupPID, 5*time.Second, "the env -i helper")
}

// TestTreeEndedByStop: Stop's signals reach a helper that left the group.
func TestTreeEndedByStop(t *testing.T) {
	sleep, setsid := lookPath(t, "sleep"), lookPath(t, "setsid")
	script := `"$1" sh -c 'echo "setsid $$"; exec "$0" 1000' "$2" &
exec "$2" 1000`
	s := startCommand(t, Config{
		Command:     "sh",
		Args:        []string{"-c", script, "sh", setsid, sleep},
		StopTimeout: 300 * time.Millisecond,
	}, func(start func()) { start() })
	setsidPID, _ := strconv.Atoi(s.skippedLine(t, "setsid "))
	if pgid, _ := syscall.Getpgid(setsidPID); pgid == s.p.PID() {
		t.Fatalf("the setsid helper %d is still in the server's group", setsidPID)
	}
	exit := stopWithin(t, s.p, 20*time.Second)
	if exit.Stage != StageTerm || exit.Signal != "SIGTERM" {
		t.Fatalf("exit %+v, want the server ended by SIGTERM", exit)
	}
	proctest.NoneLeft(t, 0, s.marker, s.p.PID())
	goneWithin(t, setsidPID, 5*time.Second, "the setsid helper")
}

// TestReaperLeavesExecChildren: collecting orphans never takes the exit
// status of a child os/exec waits for, even one that has exited and not
// yet been waited for when the reaper runs.
func TestReaperLeavesExecChildren(t *testing.T) {
	// A server started, so this process is the subreaper and knows
	// whether Go holds pidfds.
	s := start(t, Config{})
	s.handshake(t)
	if !pidfdsWork() || !goPidfds {
		t.Skip("no pidfds on this kernel: orphans are not collected at all")
	}
	for i := range 5 {
		cmd := exec.Command("sh", "-c", "exit 7")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		deadline := time.Now().Add(10 * time.Second)
		for procState(pid) != 'Z' {
			if time.Now().After(deadline) {
				t.Fatalf("child %d not a zombie within 10s (state %c)", pid, procState(pid))
			}
			time.Sleep(5 * time.Millisecond)
		}
		reapOrphans()
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Fatalf("round %d: Wait = %v, want exit status 7 (the reaper took the child's status?)", i, err)
		}
	}
}

// TestServerOutlivesStartingThread: the parent-death signal follows the
// thread that started a process, and Go threads can exit; a server
// started from a goroutine whose thread then exits keeps running.
func TestServerOutlivesStartingThread(t *testing.T) {
	tid := make(chan int, 1)
	cfg := Config{Command: proctest.Server(t)}
	s := startCommand(t, cfg, func(start func()) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			// Locked and never unlocked: the thread exits with the
			// goroutine.
			runtime.LockOSThread()
			start()
			tid <- unix.Gettid()
		}()
		<-done
	})
	task := fmt.Sprintf("/proc/self/task/%d", <-tid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(task); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the starting thread (%s) did not exit within 10s", task)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.handshake(t)
	select {
	case <-s.p.Done():
		t.Fatalf("the server died with the thread that started it: %+v", s.p.Exit())
	default:
	}
}
