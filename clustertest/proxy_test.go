package clustertest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// redisProxy stands between one instance and Redis, on 127.0.0.1, to cut
// the instance off the way a Redis that stops does: what the instance
// had sent reaches Redis, and the replies are lost.
type redisProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool // new connections are closed at once; replies are dropped
	conns map[net.Conn]struct{}
	// blipOn: the reply to the next command holding it is dropped,
	// closing its connection (see blip); blipped is that connection.
	blipOn  []byte
	blipped net.Conn
}

// startRedisProxy listens on a free port; target is set before the first
// connection (startCluster sets it to its Redis).
func startRedisProxy(t *testing.T) *redisProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &redisProxy{t: t, ln: ln, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		_ = ln.Close()
		p.closeAll()
	})
	go p.accept()
	return p
}

// url is the proxy as a cluster URL, database 0.
func (p *redisProxy) url() string { return "redis://" + p.ln.Addr().String() + "/0" }

func (p *redisProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut, target := p.cut, p.target
		p.mu.Unlock()
		if cut {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(up, c, c, false)
		go p.pipe(c, up, c, true)
	}
}

// pipe copies src to dst; replies (toClient) are dropped while the proxy
// is cut, and the connection is closed once a reply was dropped.
func (p *redisProxy) pipe(dst, src, client net.Conn, toClient bool) {
	defer func() {
		_ = dst.Close()
		_ = src.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut := p.cut || (toClient && p.blipped == client)
			if !toClient && p.blipOn != nil && bytes.Contains(buf[:n], p.blipOn) {
				p.blipOn, p.blipped = nil, client
			}
			p.mu.Unlock()
			if toClient && cut {
				return // the reply is lost, with the connection
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.t.Logf("redis proxy: %v", err)
			}
			return
		}
	}
}

// cutOff makes Redis look stopped to the instance: the connections open
// pass what the instance sends and lose Redis's replies, closing as a
// reply comes, and new ones close at once.
func (p *redisProxy) cutOff() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
}

// blip loses the reply to the next command holding marker, closing its
// connection, as a network blip does; the other connections, and new
// ones, reach Redis as usual.
func (p *redisProxy) blip(marker string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blipOn, p.blipped = []byte(marker), nil
}

// restore ends the cut: the connections open through it are closed
// (their replies were lost), and new ones reach Redis.
func (p *redisProxy) restore() {
	p.closeAll()
	p.mu.Lock()
	p.cut, p.blipOn, p.blipped = false, nil, nil
	p.mu.Unlock()
}

func (p *redisProxy) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}
