package stdio

import (
	"bufio"
	"bytes"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reapBackstop is how often orphans are collected without a SIGCHLD
// asking: one whose pid a pidfd held when SIGCHLD came is collected then.
const reapBackstop = 30 * time.Second

var (
	subreaper sync.Once
	reapMu    sync.Mutex
	// leaders are the pids of the processes Start started whose Wait has
	// not returned: never this package's to reap. Start holds reapMu
	// from the fork until the pid is here.
	leaders = map[int]bool{}
	// goPidfds says whether Go's os/exec holds a pidfd for each child (it
	// does where the kernel lets it): seen on the first leader started.
	goPidfds, goPidfdsKnown bool
)

// becomeSubreaper makes this process the one that orphans of the servers
// it starts are re-parented to, instead of PID 1, and collects them as
// they exit (on SIGCHLD). Where PID 1 does not reap (many containers, and
// Caddy is often PID 1 itself), an orphan would otherwise stay a zombie.
func becomeSubreaper() {
	subreaper.Do(func() {
		if unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != nil {
			return
		}
		sigchld := make(chan os.Signal, 1)
		signal.Notify(sigchld, syscall.SIGCHLD)
		go func() {
			t := time.NewTicker(reapBackstop)
			for {
				select {
				case <-sigchld:
				case <-t.C:
				}
				reapOrphans()
			}
		}()
	})
}

// startLeader runs start (which forks) so that the reaper never sees the
// new pid before it is known as a leader.
func startLeader(start func() (pid int, err error)) error {
	reapMu.Lock()
	defer reapMu.Unlock()
	pid, err := start()
	if err == nil {
		leaders[pid] = true
		if !goPidfdsKnown {
			held, ok := pidfdPIDs()
			goPidfds, goPidfdsKnown = ok && held[pid], true
		}
	}
	return err
}

// leaderDone is called once Wait has returned for pid.
func leaderDone(pid int) {
	reapMu.Lock()
	delete(leaders, pid)
	reapMu.Unlock()
}

// reapOrphans collects the exited children of this process that nobody
// waits for: the orphans it adopted as subreaper. It never takes the exit
// status of a child Go's os/exec waits for (a server of this package, or
// anything another part of the process started): Go holds a pidfd for
// each such child from the fork until its Wait has reaped it, and
// /proc/self/fdinfo names the pid of each pidfd. A zombie child held by a
// pidfd, or one of the leaders, is left alone. Where Go holds no pidfds
// (kernels before 5.4) it cannot tell, and collects nothing.
func reapOrphans() {
	reapMu.Lock()
	defer reapMu.Unlock()
	var zombies []int
	for _, pid := range children() {
		if !leaders[pid] && procState(pid) == 'Z' {
			zombies = append(zombies, pid)
		}
	}
	if len(zombies) == 0 || !goPidfds {
		return
	}
	held, ok := pidfdPIDs()
	if !ok {
		return
	}
	for _, pid := range zombies {
		if held[pid] {
			continue
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}

// children lists this process's children, from every thread's list
// (an adopted orphan goes to any thread of the subreaper).
func children() []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil
	}
	var pids []int
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		if err != nil {
			return childrenFromStat()
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// childrenFromStat is children for kernels without the children files:
// every process whose parent is this one.
func childrenFromStat() []int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(pid); ok && ppid == self {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procState is the state letter of process pid (Z for a zombie), or 0.
func procState(pid int) byte {
	state, _, _ := procStat(pid)
	return state
}

// procStat reads the state and parent of process pid.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 2 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return fields[0][0], ppid, err == nil
}

// pidfdPIDs returns the pids of the pidfds this process holds; ok is false
// when the kernel does not say (no pidfds, or fdinfo without Pid).
func pidfdPIDs() (map[int]bool, bool) {
	if !pidfdsWork() {
		return nil, false
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, false
	}
	held := map[int]bool{}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err != nil || link != "anon_inode:[pidfd]" {
			continue
		}
		pid, ok := fdinfoPID("/proc/self/fdinfo/" + fd.Name())
		if !ok {
			// A pidfd whose pid cannot be read: a child may be behind
			// it, so nothing is safe to collect.
			return nil, false
		}
		held[pid] = true
	}
	return held, true
}

// fdinfoPID reads the Pid line of a pidfd's fdinfo (-1 once the process
// is reaped).
func fdinfoPID(path string) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, true // closed meanwhile: holds nothing
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			return pid, err == nil
		}
	}
	return 0, false
}

var pidfdCheck = sync.OnceValue(func() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	pid, ok := fdinfoPID("/proc/self/fdinfo/" + strconv.Itoa(fd))
	return ok && pid == os.Getpid()
})

// pidfdsWork reports whether this kernel has pidfds whose fdinfo names
// their pid (Linux 5.4 and later), as Go's os/exec then uses them.
func pidfdsWork() bool { return pidfdCheck() }
