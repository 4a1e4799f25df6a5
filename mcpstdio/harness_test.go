package mcpstdio_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/mcpsse/caddy-mcp-sse"
	"github.com/mcpsse/caddy-mcp-sse/internal/everything"
	"github.com/mcpsse/caddy-mcp-sse/internal/proctest"
	"github.com/mcpsse/caddy-mcp-sse/internal/testport"
)

// marker is in the environment of every process the tests' Caddy starts
// (inherit_env is on by default), so /proc tells whether any is left.
var marker string

func TestMain(m *testing.M) {
	marker = proctest.Marker()
	k, v, _ := strings.Cut(marker, "=")
	os.Setenv(k, v)
	// The test server is on PATH as "stdioserver", as an installed server
	// would be.
	bin, err := proctest.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	code := m.Run()
	proctest.RemoveAll()
	everything.Remove()
	os.Exit(code)
}

// testCaddy is a real Caddy, run in this process.
type testCaddy struct {
	t         *testing.T
	base      string
	admin     string
	logFile   string
	port      string
	adminPort string
	site      string
}

const caddyfileTemplate = `{
	admin 127.0.0.1:{admin}
	persist_config off
	auto_https off
	log {
		output file {log}
		format json
		level DEBUG
	}
}

http://127.0.0.1:{port} {
	bind 127.0.0.1
	{site}
}
`

// stdioSite is the site of most tests: mcp_sse for SSE clients, mcp_stdio
// running the test server for everything else; {settings} goes inside the
// mcp_stdio block. An SSE session outlives its stream for resume_window
// (its process with it): a short one lets the tests see processes end.
const stdioSite = `mcp_sse {
		resume_window 1s
	}
	mcp_stdio stdioserver {
		stop_timeout 1s
		{settings}
	}`

// startCaddy runs Caddy with site as its one site's body. When the test
// ends, Caddy stops and no process it started may be left.
func startCaddy(t *testing.T, site string) *testCaddy {
	t.Helper()
	tc := &testCaddy{
		t: t, site: site,
		logFile:   filepath.Join(t.TempDir(), "caddy.log"),
		port:      testport.Free(t),
		adminPort: testport.Free(t),
	}
	tc.base = "http://127.0.0.1:" + tc.port
	tc.admin = "http://127.0.0.1:" + tc.adminPort
	tc.load()
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping Caddy: %v", err)
		}
		proctest.NoneLeft(t, 10*time.Second, marker)
		if t.Failed() {
			for _, l := range tc.logs("http.handlers.mcp_stdio") {
				t.Logf("caddy log: %v", l)
			}
		}
	})
	return tc
}

func (tc *testCaddy) caddyfile() string {
	return strings.NewReplacer("{admin}", tc.adminPort, "{port}", tc.port, "{log}", tc.logFile).
		Replace(strings.ReplaceAll(caddyfileTemplate, "{site}", tc.site))
}

func (tc *testCaddy) load() {
	tc.t.Helper()
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(caddyfile.Format([]byte(tc.caddyfile())), nil)
	if err != nil || len(warn) > 0 {
		tc.t.Fatalf("adapting Caddyfile: %v %v\n%s", err, warn, tc.caddyfile())
	}
	if err := caddy.Load(cfg, true); err != nil {
		tc.t.Fatalf("loading Caddy config: %v", err)
	}
}

// reload loads the test's Caddyfile with another site body through the
// admin API, as an operator would.
func (tc *testCaddy) reload(site string) {
	tc.t.Helper()
	tc.site = site
	req, _ := http.NewRequest(http.MethodPost, tc.admin+"/load", strings.NewReader(tc.caddyfile()))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		tc.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tc.t.Fatalf("reload: %s %s", resp.Status, body)
	}
}

// logs returns Caddy's log lines of one logger ("" for all).
func (tc *testCaddy) logs(logger string) []map[string]any {
	f, err := os.Open(tc.logFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil && (logger == "" || l["logger"] == logger) {
			lines = append(lines, l)
		}
	}
	return lines
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func procExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// noneLeft fails the test unless, within wait, no process the tests'
// Caddy started is left.
func noneLeft(t *testing.T, wait time.Duration) {
	t.Helper()
	proctest.NoneLeft(t, wait, marker)
}

// handoverClient sends each request on a connection of its own and
// retries one that a reload's listener handover cut before any server read
// it: Caddy opens a new socket for the new config and closes the old one,
// resetting a connection still in its accept queue or kept alive to it,
// and Go's client retries neither for a POST (see the root package's
// harness, and RELIABILITY.md).
func handoverClient() *http.Client {
	return &http.Client{Transport: retryUnread{&http.Transport{DisableKeepAlives: true}}}
}

type retryUnread struct{ rt http.RoundTripper }

func (r retryUnread) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := r.rt.RoundTrip(req)
		if err == nil || attempt == 5 || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF)) {
			return resp, err
		}
		if req.GetBody != nil {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		time.Sleep(10 * time.Millisecond)
	}
}
