package mcpsse_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestPostRefusedBeforeItsBody: a POST for a session that does not exist,
// or for another identity's, is answered from its headers alone, even when
// its client announced a large body and never sends it. Without
// Connection: close the server would wait for up to 256 KiB of that body
// before writing the answer.
func TestPostRefusedBeforeItsBody(t *testing.T) {
	upstream, _ := countingUpstream(t, http.MethodPost)
	tc := startCaddySite(t, defaultSite, "identity {http.request.header.X-User}", upstream)
	alice := tc.openStreamWith(t, http.Header{"X-User": {"alice"}})
	endpoint, err := url.Parse(alice.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		target string
		user   string
		want   int
	}{
		{"unknown session", "/message?session_id=no-such-session", "alice", http.StatusNotFound},
		{"another identity", endpoint.RequestURI(), "mallory", http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", "127.0.0.1:"+tc.port)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nX-User: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
				tt.target, tc.port, tt.user, 4<<20)
			if _, err := io.WriteString(conn, head+strings.Repeat(" ", 10)); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer while the body is missing: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
