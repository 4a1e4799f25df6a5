package redistest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Recording is every byte a connection of its own read from the server
// after sending one command that streams (MONITOR, SUBSCRIBE,
// PSUBSCRIBE): what crosses Redis, as whoever can reach it sees it.
type Recording struct {
	conn net.Conn
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

// Record sends args on a new connection and records what the server
// sends back until Stop, or the test's end.
func (s *Server) Record(t testing.TB, args ...string) *Recording {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), ioWait)
	if err != nil {
		t.Fatalf("redistest: Record: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_ = c.SetWriteDeadline(time.Now().Add(ioWait))
	if _, err := io.WriteString(c, b.String()); err != nil {
		_ = c.Close()
		t.Fatalf("redistest: Record: %v", err)
	}
	r := &Recording{conn: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		p := make([]byte, 32<<10)
		for {
			n, err := c.Read(p)
			r.mu.Lock()
			r.buf.Write(p[:n])
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(r.Stop)
	return r
}

// Bytes is what was recorded so far.
func (r *Recording) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf.Bytes())
}

// Stop closes the connection and waits for the reader to return.
func (r *Recording) Stop() {
	_ = r.conn.Close()
	<-r.done
}
