package mcpsse_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// BenchmarkIdleStream opens b.N streams (at most 64 opening at once, as
// clients do) on a real Caddy and reports what each costs the server
// while idle: goroutine stack and live heap, in KiB. Run it with a fixed
// count, e.g. -benchtime 4000x; the client side's share (a socket each)
// is counted too, about half a KiB.
func BenchmarkIdleStream(b *testing.B) {
	port := freePort(b)
	loadCaddyfile(b, fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	log {
		output discard
	}
}
http://127.0.0.1:%s {
	bind 127.0.0.1
	mcp_sse {
		max_sessions_per_client off
	}
	reverse_proxy 127.0.0.1:1
}`, port))
	open := func() net.Conn {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(c, "GET /sse HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nAccept: text/event-stream\r\n\r\n", port)
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				panic(err)
			}
			if strings.HasPrefix(l, "data: ") { // the endpoint
				return c
			}
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	conns := make([]net.Conn, b.N)
	var wg sync.WaitGroup
	const openers = 64
	for w := range openers {
		wg.Go(func() {
			for i := w; i < b.N; i += openers {
				conns[i] = open()
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/1024/float64(b.N), "stack-KiB/stream")
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/1024/float64(b.N), "heap-KiB/stream")
	for _, c := range conns {
		c.Close()
	}
}
