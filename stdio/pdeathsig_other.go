//go:build !linux

package stdio

import (
	"os/exec"
	"syscall"
)

// Only Linux has a parent-death signal: elsewhere a Caddy killed with
// SIGKILL leaves its servers to notice their stdin close.

func setParentDeathSignal(*syscall.SysProcAttr) {}

func startProcess(cmd *exec.Cmd) error { return cmd.Start() }
