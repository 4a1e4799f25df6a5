package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStopWithManyStreams: `caddy stop` with 1,000 open streams returns
// within cleanup_timeout plus a little, and every client sees its stream
// end.
func TestStopWithManyStreams(t *testing.T) {
	const streams = 1000
	const cleanup = 2 * time.Second
	port, adminPort := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`{
	admin 127.0.0.1:%s
	persist_config off
	auto_https off
}

http://127.0.0.1:%s {
	bind 127.0.0.1
	mcp_sse {
		cleanup_timeout %s
		max_sessions_per_client off
	}
	mcp_demo
}
`, adminPort, port, cleanup)
	addr := "127.0.0.1:" + port
	rc := startCaddy(t, t.TempDir(), cfg, addr)

	// Open the streams and initialize a tenth of them, so that their
	// teardown has an upstream session to DELETE.
	conns := make([]net.Conn, streams)
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range conns {
		wg.Go(func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // until the endpoint is in
			fmt.Fprintf(conn, "GET /sse HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
			br := bufio.NewReader(conn)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					errs <- fmt.Errorf("stream %d: %w", i, err)
					return
				}
				if ref, ok := strings.CutPrefix(line, "data: "); ok {
					if i%10 == 0 {
						body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"s","version":"1"}}}`
						resp, err := client.Post("http://"+addr+"/"+strings.TrimSpace(ref), "application/json", strings.NewReader(body))
						if err != nil {
							errs <- err
							return
						}
						resp.Body.Close()
						if resp.StatusCode != http.StatusAccepted {
							errs <- fmt.Errorf("stream %d: POST initialize: %s", i, resp.Status)
							return
						}
						// The answer on the stream says the upstream
						// session exists, for the teardown to DELETE.
						for !strings.HasPrefix(line, "event: message") {
							if line, err = br.ReadString('\n'); err != nil {
								errs <- fmt.Errorf("stream %d: waiting for the initialize answer: %w", i, err)
								return
							}
						}
					}
					conn.SetReadDeadline(time.Time{})
					break
				}
			}
			conns[i] = conn
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every stream must see its end: read each to EOF.
	ended := make(chan struct{}, streams)
	for _, conn := range conns {
		go func() {
			io.Copy(io.Discard, conn)
			conn.Close()
			ended <- struct{}{}
		}()
	}
	start := time.Now()
	rc.stop(t, "127.0.0.1:"+adminPort)
	// The bound is cleanup_timeout plus a second; the test allows a few
	// more for a loaded machine and records what it saw.
	select {
	case <-rc.exited:
	case <-time.After(cleanup + 5*time.Second):
		t.Fatalf("caddy still running %s after stop with %d streams open", cleanup+5*time.Second, streams)
	}
	took := time.Since(start)
	for range streams {
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatal("a stream did not end when caddy stopped")
		}
	}
	t.Logf("caddy stop with %d open streams: exited after %s (cleanup_timeout %s); all streams ended", streams, took.Round(time.Millisecond), cleanup)
}
