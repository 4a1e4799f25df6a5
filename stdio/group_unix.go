//go:build unix

package stdio

import "syscall"

// sysProcAttr puts the process in a process group of its own, whose id
// is its pid, with the parent-death signal where there is one.
func sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(a)
	return a
}

// signalGroup sends sig to every process of the group pgid.
func signalGroup(pgid int, sig syscall.Signal) {
	_ = syscall.Kill(-pgid, sig)
}

// groupExists reports whether any process is left in the group pgid.
func groupExists(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}
