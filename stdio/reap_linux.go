package stdio

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

var subreaper sync.Once

// becomeSubreaper makes this process the one that orphans of the servers
// it starts are re-parented to, instead of PID 1, so that reapGroup can
// collect them. Where PID 1 does not reap (many containers, and Caddy is
// often PID 1 itself), an orphan would otherwise stay a zombie.
func becomeSubreaper() {
	subreaper.Do(func() {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	})
}

// reapGroup collects the exited members of the process group pgid that
// are this process's children (the leader's orphans, re-parented here).
// It runs only after the leader itself has been waited for, so it never
// takes an exit status os/exec is waiting for.
func reapGroup(pgid int) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
