package stdio

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// A process gets SIGKILL from the kernel when the thread that started it
// exits (PR_SET_PDEATHSIG), so that a Caddy killed with SIGKILL, which
// stops nothing itself, leaves no server running. SIGKILL, not SIGTERM:
// nobody reads the server's answers any more, and its stdin is closed at
// the same moment, which is the graceful request. Its descendants get no
// signal: they see their pipes close, and one that does not exit then
// stays (reparented to the next subreaper or PID 1), with SessionVar in
// its environment to find it by.
//
// The signal follows the starting thread, not the process: Go threads do
// exit (a goroutine that ends locked to its thread takes the thread with
// it), and a server started from such a thread would be killed with it.
// Every process is therefore started from one goroutine locked to its
// thread for good, which never returns.
const parentDeathSignal = syscall.SIGKILL

func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = parentDeathSignal }

var starter = sync.OnceValue(func() chan<- func() {
	jobs := make(chan func())
	go func() {
		// Never unlocked, and the goroutine never returns: the thread
		// lives as long as the process.
		runtime.LockOSThread()
		for job := range jobs {
			job()
		}
	}()
	return jobs
})

// startProcess starts cmd from the starter thread.
func startProcess(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	starter() <- func() { errc <- cmd.Start() }
	return <-errc
}
