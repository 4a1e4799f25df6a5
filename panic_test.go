package mcpsse_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	mcpsse "github.com/mcpsse/caddy-mcp-sse"
	"github.com/mcpsse/caddy-mcp-sse/internal/demo"
)

// panicOnHead is a test-only handler whose response writer panics when the
// response head is written, as a writer wrapper gone wrong would.
type panicOnHead struct{}

func init() {
	caddy.RegisterModule(panicOnHead{})
	httpcaddyfile.RegisterHandlerDirective("test_panic_on_head", func(httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		return panicOnHead{}, nil
	})
}

func (panicOnHead) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.test_panic_on_head", New: func() caddy.Module { return panicOnHead{} }}
}

func (panicOnHead) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(&panickingWriter{&caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}, r)
}

type panickingWriter struct {
	*caddyhttp.ResponseWriterWrapper
}

func (panickingWriter) WriteHeader(int) { panic("test: the response writer panics on WriteHeader") }

// TestPanicWhileOpening: a stream whose opening panics (here its response
// writer, at the head) leaves nothing behind: the session is out of the
// store and the client's slot is free, so the same client, limited to one
// session, can open a stream on an ordinary route at once.
func TestPanicWhileOpening(t *testing.T) {
	up := httptest.NewServer(demo.Handler())
	t.Cleanup(up.Close)
	site := `route /p/* {
		test_panic_on_head
		mcp_sse {
			sse_path /p/sse
			message_path /p/message
			max_sessions_per_client 1
		}
	}
	mcp_sse {
		max_sessions_per_client 1
	}
	reverse_proxy {upstream} {
		rewrite /mcp
	}`
	tc := startCaddySite(t, site, "", strings.TrimPrefix(up.URL, "http://"))

	resp, err := testClient.Get(tc.base + "/p/sse")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("GET /p/sse answered %s through a writer that panics", resp.Status)
		}
	}
	eventually(t, 5*time.Second, "the panicked session out of the store", func() bool { return mcpsse.StoreLen() == 0 })
	c := tc.openStream(t) // refused with 503 if the slot had leaked
	c.initialize()
}
