//go:build unix

package stdio

import "syscall"

// sysProcAttr puts the process in a process group of its own, whose id
// is its pid.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to every process of the group pgid.
func signalGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig)
}

// groupExists reports whether any process is left in the group pgid.
func groupExists(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}
