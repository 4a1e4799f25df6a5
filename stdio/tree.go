package stdio

import (
	"crypto/rand"
	"encoding/hex"
	"syscall"
	"time"
)

// SessionVar is the environment variable every process carries, naming
// its session with a token of its own (not the MCP session id). Children
// inherit it, whatever process group or session they move to, so the
// whole tree a server started is found through /proc when it must end,
// and a person can find what a hard kill left (see pdeathsig_linux.go).
const SessionVar = "CADDY_MCP_STDIO_SESSION"

// newTreeMarker returns a fresh SessionVar=token entry.
func newTreeMarker() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return SessionVar + "=" + hex.EncodeToString(b)
}

// endTree looks whether what it signalled is gone after treePollMin,
// then at intervals doubling up to treePollMax: each look reads the
// environment of every process in /proc (about 4 ms with a hundred
// processes on a loaded machine), too much to repeat every few
// milliseconds for a stop_timeout.
const (
	treePollMin = 10 * time.Millisecond
	treePollMax = 250 * time.Millisecond
)

// signalTree sends sig to the process group and to every process that
// carries the tree's marker: those that left the group (setsid) too.
func (p *Process) signalTree(sig syscall.Signal) {
	signalGroup(p.PID(), sig)
	signalMarked(p.marker, sig)
}

// treeAlive reports whether anything of the tree is left running, after
// collecting the orphans that exited.
func (p *Process) treeAlive() bool {
	reapOrphans()
	return groupExists(p.PID()) || len(markedPIDs(p.marker)) > 0
}

// endTree ends what the leader left behind, in its group or not: SIGTERM,
// a wait of StopTimeout, SIGKILL, then a bounded wait for the kills to
// land, and collects the orphans that are this process's to reap.
func (p *Process) endTree() {
	defer reapOrphans()
	if !p.treeAlive() {
		return
	}
	p.signalTree(syscall.SIGTERM)
	if p.waitTreeGone(p.cfg.StopTimeout) {
		return
	}
	p.signalTree(syscall.SIGKILL)
	p.waitTreeGone(p.cfg.StopTimeout)
}

func (p *Process) waitTreeGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	poll := treePollMin
	for p.treeAlive() {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(poll, left))
		poll = min(2*poll, treePollMax)
	}
	return true
}
