package mcpsse_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkCall is one tools/call's whole way through a real Caddy in the
// test process: the client's POST on a kept-alive connection, its 202,
// parse, admission, dispatch, reverse_proxy to a minimal upstream on
// loopback, the reply relayed and written as a frame on the client's
// open stream, read by the client. Allocations per op count everything
// in the process: client, Caddy and upstream. Two more sub-benchmarks
// separate them: floor is the same client and upstream with no Caddy
// between (the call POSTed to the upstream directly, its JSON reply
// read), proxy the same through a Caddy with reverse_proxy alone (one
// request served and proxied: what any Caddy in front costs). bridge −
// proxy is then what mcp_sse adds: a second request (the client's POST
// and its 202), the handler's own work, and the frame. The clients read
// with ReadSlice and write from prebuilt buffers, so they allocate next
// to nothing themselves.
func BenchmarkCall(b *testing.B) {
	up := leanUpstream(b)
	site := func(port, handler string) {
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
	%s
	reverse_proxy %s {
		rewrite /mcp
		transport http {
			keepalive_idle_conns_per_host 256
		}
	}
}`, port, handler, up))
	}
	b.Run("bridge", func(b *testing.B) {
		port := freePort(b)
		site(port, "mcp_sse")
		stream, endpoint := openBenchStream(b, port)
		post := dialBench(b, port)
		call := func(id int, method, params string) {
			post.post(b, endpoint, id, method, params, http.StatusAccepted)
			if id != 0 {
				stream.frameFor(b, id)
			}
		}
		call(1, "initialize", `{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}`)
		call(0, "notifications/initialized", `{}`)
		b.ReportAllocs()
		id := 1000
		for b.Loop() {
			id++
			call(id, "tools/call", `{"name":"echo","arguments":{"text":"hello"}}`)
		}
	})
	b.Run("proxy", func(b *testing.B) {
		port := freePort(b)
		site(port, "")
		c := dialBench(b, port)
		b.ReportAllocs()
		id := 1000
		for b.Loop() {
			id++
			c.post(b, "/mcp", id, "tools/call", `{"name":"echo","arguments":{"text":"hello"}}`, http.StatusOK)
		}
	})
	b.Run("floor", func(b *testing.B) {
		_, port, _ := net.SplitHostPort(up)
		c := dialBench(b, port)
		b.ReportAllocs()
		id := 1000
		for b.Loop() {
			id++
			c.post(b, "/mcp", id, "tools/call", `{"name":"echo","arguments":{"text":"hello"}}`, http.StatusOK)
		}
	})
}

// leanUpstream serves a minimal Streamable HTTP server on loopback, as
// the bench's lean upstream: initialize and tools/call answered in JSON
// (the id copied out of the body by hand, no decoding), notifications
// with 202, no standalone stream (405).
func leanUpstream(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
			return
		case http.MethodPost:
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var buf [512]byte
		n, _ := readFull(r, buf[:])
		body := buf[:n]
		id := jsonMember(body, `"id":`)
		if id == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		if bytes.Contains(body, []byte(`"initialize"`)) {
			h["Mcp-Session-Id"] = []string{"lean-1"}
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2024-11-05","capabilities":{"tools":{}},"serverInfo":{"name":"bench","version":"1"}}}`, id)
			return
		}
		out := append(buf[n:n], `{"jsonrpc":"2.0","id":`...)
		out = append(out, id...)
		out = append(out, `,"result":{"content":[{"type":"text","text":"hello"}]}}`...)
		w.Write(out)
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func readFull(r *http.Request, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := r.Body.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// jsonMember is the value after key in body, up to the next ',' or '}'.
func jsonMember(body []byte, key string) []byte {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return nil
	}
	v := body[i+len(key):]
	end := bytes.IndexAny(v, ",}")
	if end < 0 {
		return nil
	}
	return v[:end]
}

// benchConn is a kept-alive client connection that POSTs and reads the
// answer's head (and its body, if it has one).
type benchConn struct {
	c   net.Conn
	br  *bufio.Reader
	buf []byte
}

func dialBench(b *testing.B, port string) *benchConn {
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &benchConn{c: c, br: bufio.NewReader(c), buf: make([]byte, 0, 1024)}
}

func (bc *benchConn) post(b *testing.B, target string, id int, method, params string, want int) {
	body := bc.buf[:0]
	body = append(body, `{"jsonrpc":"2.0",`...)
	if id != 0 {
		body = append(body, `"id":`...)
		body = strconv.AppendInt(body, int64(id), 10)
		body = append(body, ',')
	}
	body = append(body, `"method":"`...)
	body = append(body, method...)
	body = append(body, `","params":`...)
	body = append(body, params...)
	body = append(body, '}')
	n := len(body)
	req := append(body, "POST "...)
	req = append(req, target...)
	req = append(req, " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: "...)
	req = strconv.AppendInt(req, int64(n), 10)
	req = append(req, "\r\n\r\n"...)
	req = append(req, body...)
	bc.buf = req[:0]
	if _, err := bc.c.Write(req[n:]); err != nil {
		b.Fatal(err)
	}
	status, length := 0, 0
	for first := true; ; first = false {
		line, err := bc.br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if first {
			status, _ = strconv.Atoi(string(line[9:12]))
			continue
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if status != want {
		b.Fatalf("POST %s: status %d, want %d", method, status, want)
	}
	if _, err := bc.br.Discard(length); err != nil {
		b.Fatal(err)
	}
}

// benchStream is an open SSE stream read line by line.
type benchStream struct{ br *bufio.Reader }

func openBenchStream(b *testing.B, port string) (*benchStream, string) {
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /sse HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nAccept: text/event-stream\r\n\r\n", port)
	s := &benchStream{br: bufio.NewReader(c)}
	endpoint := string(s.data(b)) // relative to /sse: "message?session_id=…"
	if !strings.HasPrefix(endpoint, "/") {
		endpoint = "/" + endpoint
	}
	return s, endpoint
}

// data returns the next data line's value (valid until the next read).
func (s *benchStream) data(b *testing.B) []byte {
	for {
		line, err := s.br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if v, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
			return bytes.TrimSpace(v)
		}
	}
}

// frameFor reads frames until the one answering id, which must be the next message.
func (s *benchStream) frameFor(b *testing.B, id int) {
	d := s.data(b)
	got := jsonMember(d, `"id":`)
	var want [20]byte
	if !bytes.Equal(got, strconv.AppendInt(want[:0], int64(id), 10)) {
		b.Fatalf("frame answers id %s, want %d: %s", got, id, d)
	}
}
