// Command stdioload measures mcp_stdio's throughput for 2026-07-28
// (sessionless) clients against legacy-session clients, in front of the
// same stdio server, and the server driven straight through its pipes as
// the physical limit.
//
//	go build -o /tmp/caddy ./cmd/caddy
//	go build -o /tmp/stdioserver ./internal/stdioserver
//	go -C bench run ./cmd/stdioload -caddy /tmp/caddy -server /tmp/stdioserver
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	caddyBin := flag.String("caddy", "", "a Caddy with this module, e.g. a build of cmd/caddy")
	server := flag.String("server", "", "the stdio MCP server (with an echo tool), e.g. a build of internal/stdioserver")
	workers := flag.Int("c", 64, "concurrent clients")
	calls := flag.Int("calls", 200, "calls per client")
	repeat := flag.Int("repeat", 3, "rounds of every mode, interleaved")
	flag.Parse()
	if *server == "" || *caddyBin == "" {
		log.Fatal("-caddy and -server are required")
	}
	port := freePort()
	cfg := fmt.Sprintf(`{
	admin off
	auto_https off
	log {
		output discard
	}
}
http://127.0.0.1:%s {
	bind 127.0.0.1
	mcp_stdio * %s {
		max_processes 1000
		max_processes_per_client off
		process_key {http.request.header.X-Key}
	}
}`, port, *server)
	dir, err := os.MkdirTemp("", "stdioload-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		log.Fatal(err)
	}
	caddyProc := exec.Command(*caddyBin, "run", "--config", file, "--adapter", "caddyfile")
	caddyProc.Stderr = os.Stderr
	if err := caddyProc.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = caddyProc.Process.Signal(os.Interrupt); _ = caddyProc.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("Caddy did not listen within 30s")
		}
	}
	url := "http://127.0.0.1:" + port + "/mcp"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers * 2, MaxConnsPerHost: *workers * 2}}

	modes := []struct {
		name string
		run  func(worker int) (func() error, func(), error)
	}{
		{"legacy sessions (one process each)", func(w int) (func() error, func(), error) { return legacyClient(client, url) }},
		{"sessionless, a key each (one process each)", func(w int) (func() error, func(), error) {
			return sessionlessClient(client, url, "k"+strconv.Itoa(w))
		}},
		{"sessionless, one key (one process)", func(w int) (func() error, func(), error) { return sessionlessClient(client, url, "shared") }},
		{"pipes, a process each", func(w int) (func() error, func(), error) { return pipeClient(*server, echoArgs) }},
		{"pipes, a process each, 2026-07-28 _meta in params", func(w int) (func() error, func(), error) {
			return pipeClient(*server, strings.TrimSuffix(echoArgs, "}")+","+modernMeta+"}")
		}},
	}
	results := map[string][]float64{}
	for r := 0; r < *repeat; r++ {
		for _, m := range modes {
			rate, err := measure(*workers, *calls, m.run)
			if err != nil {
				log.Fatalf("%s: %v", m.name, err)
			}
			results[m.name] = append(results[m.name], rate)
			log.Printf("round %d: %-45s %8.0f calls/s", r+1, m.name, rate)
		}
	}
	fmt.Printf("| mode | calls/s (C=%d, %d calls each), per round | median |\n|---|---|---|\n", *workers, *calls)
	for _, m := range modes {
		v := results[m.name]
		fmt.Printf("| %s | %s | %.0f |\n", m.name, join(v), median(v))
	}
	leg, sl := median(results[modes[0].name]), median(results[modes[1].name])
	fmt.Printf("\nsessionless (a key each) ÷ legacy: %.2f×; ÷ pipes: %.2f×; legacy ÷ pipes: %.2f×\n",
		sl/leg, sl/median(results[modes[3].name]), leg/median(results[modes[3].name]))
}

// measure runs workers clients, each making calls sequentially after its
// setup, and returns calls per second over the calls alone.
func measure(workers, calls int, client func(int) (func() error, func(), error)) (float64, error) {
	fns := make([]func() error, workers)
	closers := make([]func(), workers)
	for w := range workers {
		f, c, err := client(w)
		if err != nil {
			return 0, err
		}
		fns[w], closers[w] = f, c
		// A warm-up call each: the processes are started and initialized.
		if err := f(); err != nil {
			return 0, err
		}
	}
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				if err := fns[w](); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(workers*calls) / elapsed.Seconds(), nil
}

const echoArgs = `{"name":"echo","arguments":{"text":"hello"}}`

// modernMeta is the _meta a 2026-07-28 client puts in every request.
const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"load","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`

func post(c *http.Client, url string, hdr map[string]string, body string) ([]byte, http.Header, error) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode >= 300 {
		err = fmt.Errorf("%s: %s", resp.Status, b)
	}
	return b, resp.Header, err
}

func checkEcho(b []byte) error {
	if !bytes.Contains(b, []byte(`hello`)) || bytes.Contains(b, []byte(`"error"`)) {
		return fmt.Errorf("unexpected answer: %s", b)
	}
	return nil
}

// legacyClient initializes a session and calls echo in it.
func legacyClient(c *http.Client, url string) (func() error, func(), error) {
	_, hdr, err := post(c, url, nil, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"load","version":"1"}}}`)
	if err != nil {
		return nil, nil, err
	}
	sid := hdr.Get("Mcp-Session-Id")
	h := map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
	if _, _, err := post(c, url, h, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil {
		return nil, nil, err
	}
	id := 0
	call := func() error {
		id++
		b, _, err := post(c, url, h, `{"jsonrpc":"2.0","id":`+strconv.Itoa(id)+`,"method":"tools/call","params":`+echoArgs+`}`)
		if err != nil {
			return err
		}
		return checkEcho(b)
	}
	end := func() {
		req, _ := http.NewRequest(http.MethodDelete, url, nil)
		req.Header.Set("Mcp-Session-Id", sid)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	return call, end, nil
}

// sessionlessClient calls echo as a 2026-07-28 client whose process_key
// is key.
func sessionlessClient(c *http.Client, url, key string) (func() error, func(), error) {
	h := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo", "X-Key": key}
	params := strings.TrimSuffix(echoArgs, "}") + "," + modernMeta + "}"
	id := 0
	call := func() error {
		id++
		b, _, err := post(c, url, h, `{"jsonrpc":"2.0","id":`+strconv.Itoa(id)+`,"method":"tools/call","params":`+params+`}`)
		if err != nil {
			return err
		}
		return checkEcho(b)
	}
	return call, func() {}, nil
}

// pipeClient starts the server and calls echo through its stdin and
// stdout: what no bridge can beat.
func pipeClient(server, args string) (func() error, func(), error) {
	cmd := exec.Command(server)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	r := bufio.NewReaderSize(out, 1<<16)
	send := func(msg string) error {
		_, err := io.WriteString(in, msg+"\n")
		return err
	}
	read := func() ([]byte, error) {
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return nil, err
			}
			var env struct {
				ID json.RawMessage `json:"id"`
			}
			if json.Unmarshal(line, &env) == nil && env.ID != nil {
				return line, nil
			}
		}
	}
	stop := func() { in.Close(); _ = cmd.Wait() }
	if err := send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"load","version":"1"}}}`); err != nil {
		return nil, nil, err
	}
	if _, err := read(); err != nil {
		return nil, nil, err
	}
	_ = send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	id := 0
	call := func() error {
		id++
		if err := send(`{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"tools/call","params":` + args + `}`); err != nil {
			return err
		}
		b, err := read()
		if err != nil {
			return err
		}
		return checkEcho(b)
	}
	return call, stop, nil
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func join(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(parts, " / ")
}
