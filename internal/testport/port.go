// Package testport hands tests a TCP port to give a server they start.
//
// Asking the kernel for a free port (listening on port 0) and closing the
// listener is racy when the tests of other packages run at the same time:
// their outgoing connections take ports from the same ephemeral range,
// and one may hold the port by the time the server binds it ("address
// already in use"). Ports below that range are never handed out on their
// own, so a free one there stays free unless another test picks it too.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// Free returns a port, as a string, that nothing listens on or connects
// from on any address right now, chosen below the kernel's ephemeral
// range where it can tell that range, and from it otherwise.
func Free(t testing.TB) string {
	t.Helper()
	if low := ephemeralLow(); low > 10000 {
		for range 100 {
			p := 10000 + rand.IntN(low-10000)
			if l, err := net.Listen("tcp", fmt.Sprintf(":%d", p)); err == nil {
				l.Close()
				return fmt.Sprint(p)
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// ephemeralLow is the first port of Linux's ephemeral range, or 0.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil {
		return 0
	}
	return low
}
