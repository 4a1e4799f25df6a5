// Package authservertest runs a real OAuth authorization server for a
// test, as redistest runs Redis: panva's oidc-provider (npm, OpenID
// certified) under node, from testdata/tsclient/authserver.mjs, on a free
// 127.0.0.1 port, as a process the test knows and ends.
//
// The test makes the server's signing keys and hands them over, so it
// holds the private key the server signs with: tokens the server issues
// are the real thing, and a test can also sign a token with the same
// key to try claims the server would never issue (expired, another
// issuer). Keys can be rotated while the server runs.
//
// A missing node or npm package fails the test (scripts/test installs
// them); it never skips.
package authservertest

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
)

// Deadlines of the waits.
const (
	startWait = 30 * time.Second
	stopWait  = 10 * time.Second
	ioWait    = 10 * time.Second
)

// The clients the server knows (see authserver.mjs).
const (
	Client             = "mcp-client"
	ClientSecret       = "mcp-secret"
	OpaqueClient       = "opaque-client"
	OpaqueClientSecret = "opaque-secret"
	IntrospectClient   = "resource-server"
	IntrospectSecret   = "rs-secret"
	// ExchangeClient is the only client allowed the token exchange grant
	// (RFC 8693), for subject tokens of http://127.0.0.1:<port> resources
	// and target resources under ExchangeResourcePrefix.
	ExchangeClient         = "exchange-client"
	ExchangeSecret         = "exchange-secret"
	ExchangeResourcePrefix = "https://downstream.example/"
)

// Server is one running authorization server.
type Server struct {
	t      testing.TB
	port   string
	script string
	dir    string
	log    *proctest.LockedBuffer

	mu     sync.Mutex
	keys   []jose.JSONWebKey // private, the signing one first
	cmd    *exec.Cmd
	exited chan struct{}
}

// Dir is testdata/tsclient, where the script and its npm packages are.
func Dir(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "tsclient")
}

// Start runs the server with one fresh RSA key and waits until it
// serves its metadata.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := Dir(t)
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not found (the authorization server of the tests runs under it): %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		t.Fatalf("npm package oidc-provider not installed (run scripts/test, or npm ci --prefix %s): %v", dir, err)
	}
	s := &Server{t: t, port: testport.Free(t), script: filepath.Join(dir, "authserver.mjs"), dir: t.TempDir(), log: &proctest.LockedBuffer{}}
	s.keys = []jose.JSONWebKey{NewKey(t)}
	t.Cleanup(func() {
		s.mu.Lock()
		cmd, exited := s.cmd, s.exited
		s.mu.Unlock()
		if cmd != nil && !isClosed(exited) {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("authorization server log:\n%s", s.log.String())
		}
	})
	s.start()
	return s
}

// NewKey is a fresh RS256 signing key (private), with a random kid.
func NewKey(t testing.TB) jose.JSONWebKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	return jose.JSONWebKey{Key: k, KeyID: hex.EncodeToString(id), Algorithm: string(jose.RS256), Use: "sig"}
}

func (s *Server) start() {
	s.t.Helper()
	keysFile := filepath.Join(s.dir, "keys.json")
	if err := os.WriteFile(keysFile, s.jwks(), 0o600); err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command("node", s.script, s.port, keysFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting the authorization server: %v", err)
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			fmt.Fprintln(s.log, sc.Text())
			if !signalled && strings.HasPrefix(sc.Text(), "READY ") {
				close(ready)
				signalled = true
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	select {
	case <-ready:
	case <-exited:
		s.t.Fatalf("the authorization server exited before it was ready (%v):\n%s", cmd.ProcessState, s.log.String())
	case <-time.After(startWait):
		s.t.Fatalf("the authorization server was not ready within %s:\n%s", startWait, s.log.String())
	}
}

// jwks is the server's key set with the private keys, as it reads it.
func (s *Server) jwks() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: s.keys})
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// Issuer is the server's issuer identifier.
func (s *Server) Issuer() string { return "http://127.0.0.1:" + s.port }

// SigningKey is the private key the server signs tokens with now.
func (s *Server) SigningKey() jose.JSONWebKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0]
}

// Rotate makes a new key the signing one, keeping the old ones
// published (as a server rotating its keys does, so tokens signed
// before stay valid), or dropping them when keepOld is false. It returns
// the new key.
func (s *Server) Rotate(keepOld bool) jose.JSONWebKey {
	s.t.Helper()
	k := NewKey(s.t)
	s.mu.Lock()
	if keepOld {
		s.keys = append([]jose.JSONWebKey{k}, s.keys...)
	} else {
		s.keys = []jose.JSONWebKey{k}
	}
	s.mu.Unlock()
	resp := s.post("/control/keys", "application/json", string(s.jwks()), "", "")
	if resp.status != http.StatusNoContent {
		s.t.Fatalf("rotating keys: %d %s", resp.status, resp.body)
	}
	return k
}

// Stats counts what the server was asked for since it started.
type Stats struct {
	JWKS          int `json:"jwks"`
	Discovery     int `json:"discovery"`
	Introspection int `json:"introspection"`
	Token         int `json:"token"`
	// Exchange counts token exchange requests that reached the grant's
	// handler (authenticated, allowed the grant); Exchanged, the tokens
	// it issued.
	Exchange  int `json:"exchange"`
	Exchanged int `json:"exchanged"`
}

// Stats is what the server counted.
func (s *Server) Stats() Stats {
	s.t.Helper()
	resp, err := (&http.Client{Timeout: ioWait}).Get(s.Issuer() + "/control/stats")
	if err != nil {
		s.t.Fatalf("stats: %v", err)
	}
	defer resp.Body.Close()
	var st Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		s.t.Fatalf("stats: %v", err)
	}
	return st
}

// Token gets an access token for resource with the client_credentials
// grant as client (Client or OpaqueClient), with scope.
func (s *Server) Token(client, resource, scope string) string {
	s.t.Helper()
	secret := map[string]string{Client: ClientSecret, OpaqueClient: OpaqueClientSecret}[client]
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {resource}, "scope": {scope}}
	resp := s.post("/token", "application/x-www-form-urlencoded", form.Encode(), client, secret)
	if resp.status != http.StatusOK {
		s.t.Fatalf("token for %s: %d %s", resource, resp.status, resp.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(resp.body), &tok); err != nil || tok.AccessToken == "" {
		s.t.Fatalf("token for %s: %q: %v", resource, resp.body, err)
	}
	return tok.AccessToken
}

type reply struct {
	status int
	body   string
}

func (s *Server) post(path, contentType, body, user, pass string) reply {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.Issuer()+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Timeout: ioWait}).Do(req)
	if err != nil {
		s.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return reply{resp.StatusCode, string(b)}
}

// Stop ends the server (SIGTERM, then SIGKILL past the deadline) and
// waits for it: the authorization server is down.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil || isClosed(exited) {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopWait):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart runs the server again on the same port with the same keys.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
