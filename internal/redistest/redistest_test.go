package redistest

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRestartKeepsData: a server stopped and started again on the same
// port and directory has the keys it had; while it is down nothing
// answers on its port.
func TestRestartKeepsData(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/0") {
		t.Errorf("URL = %q", s.URL())
	}
	for _, policy := range []struct{ param, want string }{
		{"maxmemory-policy", "noeviction"},
		{"appendonly", "yes"},
		{"save", ""},
		{"bind", "127.0.0.1"},
	} {
		got, err := s.Do("CONFIG", "GET", policy.param)
		if want := policy.param + "\n" + policy.want; err != nil || got != want {
			t.Errorf("CONFIG GET %s = %q, %v; want %q", policy.param, got, err, want)
		}
	}
	if got, err := s.Do("SET", "k", "v 1"); err != nil || got != "OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	pid := s.PID()
	s.Stop()
	if s.PID() != 0 {
		t.Errorf("PID after Stop = %d", s.PID())
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("process %d still in /proc after Stop", pid)
	}
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered while the server is stopped")
	}
	s.Restart()
	if got, err := s.Do("GET", "k"); err != nil || got != "v 1" {
		t.Fatalf("GET after Restart = %q, %v", got, err)
	}
	if s.PID() == pid || s.PID() == 0 {
		t.Errorf("PID after Restart = %d (was %d)", s.PID(), pid)
	}
}

// TestKill: SIGKILL ends the server at once; Restart brings it back.
func TestKill(t *testing.T) {
	s := Start(t)
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart()
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Fatalf("PING after Restart = %q, %v", got, err)
	}
}

// TestReplies: each kind of RESP reply as Do gives it.
func TestReplies(t *testing.T) {
	s := Start(t)
	for _, tc := range []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{"status", []string{"SET", "a", "1"}, "OK", ""},
		{"integer", []string{"INCR", "a"}, "2", ""},
		{"bulk", []string{"GET", "a"}, "2", ""},
		{"bulk with a line break", []string{"ECHO", "x\r\ny"}, "x\r\ny", ""},
		{"null", []string{"GET", "missing"}, "", ""},
		{"array", []string{"MGET", "a", "missing", "a"}, "2\n\n2", ""},
		{"error", []string{"NOSUCHCOMMAND"}, "", "unknown command"},
		{"dbsize", []string{"DBSIZE"}, "1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Do(tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Do(%q) = %q, %v; want an error with %q", tc.args, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Do(%q) = %q, %v; want %q", tc.args, got, err, tc.want)
			}
		})
	}
	keys, err := s.Keys("*")
	if err != nil || len(keys) != 1 || keys[0] != "a" {
		t.Errorf("Keys = %q, %v", keys, err)
	}
}

// TestClients: CLIENT LIST counts the connections held open, not the
// one asking.
func TestClients(t *testing.T) {
	s := Start(t)
	clients, err := s.Clients()
	if err != nil || len(clients) != 0 {
		t.Fatalf("Clients with none connected = %q, %v", clients, err)
	}
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("PING on a held connection: %q, %v", line, err)
	}
	clients, err = s.Clients()
	if err != nil || len(clients) != 1 || !strings.Contains(clients[0], "cmd=ping") {
		t.Fatalf("Clients with one connected = %q, %v", clients, err)
	}
}
