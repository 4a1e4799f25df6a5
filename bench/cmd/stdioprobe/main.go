// Command stdioprobe measures the RSS of a running Caddy serving
// mcp_stdio under one of three loads (issue 16): stalled POST bodies (60
// connections announcing 4 MiB and never sending the last byte, with no
// session), a client that never reads a POST's event stream (a flood call
// writing 90 notifications of 4 MiB), and notifications with no stream
// open (1,000 of 64 KiB). Caddy runs the test server with its flood tool:
//
//	go build -o /tmp/caddy-sh ./cmd/caddy
//	go build -o /tmp/stdioserver ./internal/stdioserver
//	# Caddyfile: http://127.0.0.1:18780 { bind 127.0.0.1
//	#            mcp_stdio * /tmp/stdioserver }
//	/tmp/caddy-sh run --config Caddyfile &
//	go run ./cmd/stdioprobe -pid $! -mode stall|flood|backlog -watch 15s
//
// (from bench/). It prints Caddy's RSS before, at its peak while it
// watches, and at the end, with the statuses the stalled POSTs got.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

var (
	addr  = flag.String("addr", "127.0.0.1:18780", "Caddy's site")
	pid   = flag.Int("pid", 0, "Caddy's pid")
	mode  = flag.String("mode", "stall", "stall | flood | backlog")
	conns = flag.Int("conns", 60, "stall: connections")
	watch = flag.Duration("watch", 15*time.Second, "how long to sample RSS")
)

func rss() int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", *pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), "%d", &kb)
			return kb / 1024
		}
	}
	return -1
}

func post(id, body string) (*http.Response, error) {
	req, _ := http.NewRequest("POST", "http://"+*addr+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if id != "" {
		req.Header.Set("Mcp-Session-Id", id)
	}
	return http.DefaultClient.Do(req)
}

func initialize() string {
	resp, err := post("", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}`)
	if err != nil {
		panic(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("Mcp-Session-Id")
	r2, _ := post(id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	r2.Body.Close()
	return id
}

func main() {
	flag.Parse()
	before := rss()
	statuses := map[string]int{}
	var mu sync.Mutex
	switch *mode {
	case "stall":
		const size = 4 << 20
		results := make(chan string, *conns)
		for range *conns {
			go func() {
				c, err := net.Dial("tcp", *addr)
				if err != nil {
					results <- "dial: " + err.Error()
					return
				}
				fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", *addr, size)
				c.Write([]byte(strings.Repeat(" ", size-1)))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					results <- "no response"
					return
				}
				results <- resp.Status
			}()
		}
		go func() {
			for s := range results {
				mu.Lock()
				statuses[s]++
				mu.Unlock()
			}
		}()
	case "flood":
		id := initialize()
		c, _ := net.Dial("tcp", *addr)
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"flood","arguments":{"count":90,"size":4193280},"_meta":{"progressToken":"p"}}}`
		fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: %s\r\nContent-Length: %d\r\n\r\n%s", *addr, id, len(body), body)
		// Never read.
	case "backlog":
		id := initialize()
		r, _ := post(id, `{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}`)
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		r, _ = post(id, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"flood","arguments":{"count":1000,"size":65536,"detach":true}}}`)
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		// Never open the GET stream.
	}
	peak := before
	start := time.Now()
	for time.Since(start) < *watch {
		time.Sleep(250 * time.Millisecond)
		peak = max(peak, rss())
	}
	mu.Lock()
	fmt.Printf("mode=%s rss_before=%dMiB peak=%dMiB end=%dMiB statuses=%v\n", *mode, before, peak, rss(), statuses)
	mu.Unlock()
}
