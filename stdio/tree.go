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

// treePoll is how often endTree looks whether what it signalled is gone.
const treePoll = 20 * time.Millisecond

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
	for p.treeAlive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(treePoll)
	}
	return true
}
