package mcpauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddyfilefmt "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/mcpsse/caddy-mcp-sse"
	"github.com/mcpsse/caddy-mcp-sse/internal/authservertest"
	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.RemoveAll()
	os.Exit(code)
}

// proxyAddr is the loopback address the tests' "TLS-terminating proxy"
// connects from; Caddy trusts it (trusted_proxies), and nothing else.
const proxyAddr = "127.0.0.2"

// caddyfileTemplate: mcp_auth in front of three routes: the headers the
// next handler sees, mcp_sse and mcp_stdio under /stdio/, and mcp_sse
// with reverse_proxy to a Streamable HTTP upstream everywhere else.
const caddyfileTemplate = `{
	admin 127.0.0.1:{admin}
	persist_config off
	auto_https off
	log {
		output file {log}
		format json
	}
	servers {
		trusted_proxies static ` + proxyAddr + `/32
		max_header_size 16MB
	}
}

{site} {
	bind 127.0.0.1
	mcp_auth {
		authorization_server {issuer}
		scopes mcp:tools
		{settings}
	}
	handle /headers {
		request_header X-Auth-User {http.auth.user.id}
		request_header X-Auth-Scope {http.auth.user.scope}
		request_header X-Auth-Client {http.auth.user.client_id}
		reverse_proxy {headers}
	}
	handle /stdio/* {
		mcp_sse {
			sse_path /stdio/sse
			message_path /stdio/message
		}
		mcp_stdio * {stdioserver}
	}
	handle {
		mcp_sse
		reverse_proxy {upstream} {
			rewrite /mcp
		}
	}
}
`

// env is a real Caddy with mcp_auth, a real authorization server, the
// demo MCP server upstream, and a server that answers with the request
// headers it received.
type env struct {
	t        *testing.T
	as       *authservertest.Server
	base     string // http://127.0.0.1:port
	admin    string
	upstream *sawAuthorization
}

// sawAuthorization wraps the upstreams, remembers the headers and the
// trailers of every request that reached them, and any Authorization
// header or trailer among them that allow (nil: none) does not allow:
// the client's token may never reach them.
type sawAuthorization struct {
	mu       sync.Mutex
	seen     []string
	headers  []http.Header
	trailers []http.Header
	allow    func(authorization string) bool
}

func (s *sawAuthorization) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The body read to its end first: trailers come after it.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.headers = append(s.headers, r.Header.Clone())
		s.trailers = append(s.trailers, r.Trailer.Clone())
		for _, v := range []string{r.Header.Get("Authorization"), r.Trailer.Get("Authorization")} {
			if v != "" && (s.allow == nil || !s.allow(v)) {
				s.seen = append(s.seen, v)
			}
		}
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// Trailers are the trailers of the requests that reached the upstreams
// (nil for a request without).
func (s *sawAuthorization) Trailers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.trailers...)
}

// Allow lets Authorization values that allow accepts reach the upstreams.
func (s *sawAuthorization) Allow(allow func(authorization string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allow = allow
}

// Headers are the headers of the requests that reached the upstreams.
func (s *sawAuthorization) Headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.headers...)
}

func (s *sawAuthorization) Seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func start(t *testing.T, settings string) *env {
	t.Helper()
	as := authservertest.Start(t)
	return startWith(t, as, settings)
}

func startWith(t *testing.T, as *authservertest.Server, settings string) *env {
	t.Helper()
	return startSite(t, as, "http://127.0.0.1:{port}", settings)
}

// startSite is startWith with the site's address (a template with
// {port}): "http://:{port}" makes a site that answers for any host.
func startSite(t *testing.T, as *authservertest.Server, site, settings string) *env {
	t.Helper()
	e := &env{t: t, as: as, upstream: &sawAuthorization{}}
	up := httptest.NewServer(e.upstream.wrap(demo.Handler()))
	t.Cleanup(up.Close)
	headers := httptest.NewServer(e.upstream.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	})))
	t.Cleanup(headers.Close)
	port, adminPort := testport.Free(t), testport.Free(t)
	e.base, e.admin = "http://127.0.0.1:"+port, "http://127.0.0.1:"+adminPort
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	cfg := strings.NewReplacer("{site}", strings.ReplaceAll(site, "{port}", port), "{log}", logFile, "{admin}", adminPort, "{port}", port, "{issuer}", as.Issuer(),
		"{settings}", settings, "{upstream}", strings.TrimPrefix(up.URL, "http://"),
		"{headers}", strings.TrimPrefix(headers.URL, "http://"), "{stdioserver}", proctest.Server(t),
	).Replace(caddyfileTemplate)
	adapted, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfilefmt.Format([]byte(cfg)), nil)
	if err != nil || len(warn) > 0 {
		t.Fatalf("adapting Caddyfile: %v %v\n%s", err, warn, cfg)
	}
	if err := caddy.Load(adapted, true); err != nil {
		t.Fatalf("loading Caddy config: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping Caddy: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("caddy log, its end:\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
		if seen := e.upstream.Seen(); len(seen) > 0 {
			t.Errorf("the client's token reached the upstream, %d times: %.40q…", len(seen), seen[0])
		}
	})
	return e
}

// resource is the URI of the protected resource as a client reaching
// Caddy directly names it.
func (e *env) resource() string { return e.base }

// token is a real access token for the resource, granted scope.
func (e *env) token(scope string) string {
	return e.as.Token(authservertest.Client, e.resource()+"/", scope)
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to Caddy, from proxyAddr when fromProxy.
func (e *env) do(method, path string, header http.Header, body string, fromProxy bool) reply {
	e.t.Helper()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if fromProxy {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(proxyAddr)}
	}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}
	defer client.CloseIdleConnections()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if host := header.Get("Host"); host != "" {
		req.Host = host // Go sends req.Host, never a Host in req.Header
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return reply{resp.StatusCode, resp.Header, b}
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// metrics is the admin endpoint's /metrics text.
func (e *env) metrics() string {
	e.t.Helper()
	resp, err := http.Get(e.admin + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// tsClient runs testdata/tsclient/auth_client.mjs against url and returns
// what it printed.
func (e *env) tsClient(url, kind, text string, extra ...string) (map[string]any, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{filepath.Join(authservertest.Dir(e.t), "auth_client.mjs"), url, kind, e.as.Issuer(), text}, extra...)
	cmd := exec.CommandContext(ctx, "node", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, &nodeError{err: err, stderr: stderr.String()}
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		e.t.Fatalf("node client printed %q: %v", stdout.String(), err)
	}
	return got, nil
}

type nodeError struct {
	err    error
	stderr string
}

func (n *nodeError) Error() string { return n.err.Error() + "\n" + n.stderr }

// port is the port Caddy listens on.
func (e *env) port() string { return e.base[strings.LastIndexByte(e.base, ':')+1:] }
