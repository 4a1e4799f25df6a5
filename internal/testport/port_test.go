package testport

import (
	"net"
	"strconv"
	"testing"
)

// Free gives a port a server can listen on at once, and on Linux one below
// the ephemeral range, where outgoing connections never take it.
func TestFree(t *testing.T) {
	p := Free(t)
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		t.Fatalf("Free = %q", p)
	}
	if low := ephemeralLow(); low > 10000 && n >= low {
		t.Errorf("Free = %d, inside the ephemeral range from %d", n, low)
	}
	l, err := net.Listen("tcp", ":"+p)
	if err != nil {
		t.Fatalf("listening on the port Free gave: %v", err)
	}
	l.Close()
}
