//go:build !unix

package stdio

import (
	"os"
	"syscall"
)

// Without process groups (Windows), only the process itself is reached:
// the module builds everywhere Caddy does, but a server's own children
// are not ended with it there, and SIGTERM is not sent (closing stdin
// then killing the process is all the shutdown there is).

func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(pid int, sig syscall.Signal) {
	if sig != syscall.SIGKILL {
		return
	}
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

func groupExists(int) bool { return false }
