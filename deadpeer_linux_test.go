package mcpsse

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpsse/caddy-mcp-sse/sse"
)

// TestBindUnackedTimeout: a stream's HTTP/1.1 connection, as the server
// holds it, gets the TCP_USER_TIMEOUT asked for; twice the longer of
// send_timeout and keepalive.
func TestBindUnackedTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var server net.Conn
	select {
	case server = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener accepted no connection within 10s")
	}
	defer server.Close()

	r, _ := http.NewRequest("GET", "/sse", nil)
	r = r.WithContext(context.WithValue(r.Context(), connCtxKey{}, server))
	if d := unackedTimeout(sse.Options{SendTimeout: 750 * time.Millisecond, Keepalive: 300 * time.Millisecond}); d != 1500*time.Millisecond {
		t.Fatalf("unackedTimeout = %s, want 1.5s", d)
	}
	bindUnackedTimeout(r, 1500*time.Millisecond)

	raw, _ := server.(*net.TCPConn).SyscallConn()
	var got int
	raw.Control(func(fd uintptr) {
		got, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	})
	if err != nil || got != 1500 {
		t.Fatalf("TCP_USER_TIMEOUT = %d (%v), want 1500", got, err)
	}

	// HTTP/2 connections are shared: left alone.
	r2, _ := http.NewRequest("GET", "/sse", nil)
	r2.ProtoMajor = 2
	r2 = r2.WithContext(context.WithValue(r2.Context(), connCtxKey{}, client))
	bindUnackedTimeout(r2, time.Second)
	raw, _ = client.(*net.TCPConn).SyscallConn()
	raw.Control(func(fd uintptr) {
		got, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	})
	if got != 0 {
		t.Errorf("HTTP/2 connection got TCP_USER_TIMEOUT %d", got)
	}
}
