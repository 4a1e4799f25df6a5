package stdio

import (
	"bytes"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// markedPIDs lists the live processes whose environment holds marker
// (KEY=VALUE). A zombie has no environment left and is not listed; nor is
// a process this one may not read (another user's).
func markedPIDs(marker string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if carries(pid, marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// carries reports whether process pid's environment holds marker.
func carries(pid int, marker string) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for kv := range bytes.SplitSeq(env, []byte{0}) {
		if string(kv) == marker {
			return true
		}
	}
	return false
}

// signalMarked sends sig to every process that carries marker. Each is
// pinned by a pidfd and checked again before the signal, so that a pid
// reused between the scan and the signal is never hit.
func signalMarked(marker string, sig syscall.Signal) {
	for _, pid := range markedPIDs(marker) {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			if err == syscall.ENOSYS && carries(pid, marker) {
				_ = syscall.Kill(pid, sig) // kernels before 5.3
			}
			continue
		}
		if carries(pid, marker) {
			_ = unix.PidfdSendSignal(fd, sig, nil, 0)
		}
		_ = unix.Close(fd)
	}
}
