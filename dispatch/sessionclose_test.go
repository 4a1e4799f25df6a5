package dispatch

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/session"
)

// TestSessionCloseCancelsDispatch: a dispatch whose upstream has not
// begun to answer is cancelled when its session closes, long before
// upstream_timeout, and the dispatch ends.
func TestSessionCloseCancelsDispatch(t *testing.T) {
	started := make(chan struct{})
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		close(started)
		<-r.Context().Done() // an upstream that never answers
		return r.Context().Err()
	})
	d := &Dispatcher{Timeout: time.Hour, MaxMessageSize: 1 << 20, QueueWait: time.Second, Logger: zap.NewNop()}
	sess := session.New(session.NewID(), "127.0.0.1:1", 16)
	sess.SetInitialized(true)
	msgs, err := Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	post := httptest.NewRequest(http.MethodPost, "/message?session_id="+sess.ID, nil)
	d.Go(Call{Session: sess, Message: msgs[0], Post: post, Next: next, End: endFunc(func() { close(ended) })})
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the dispatch did not reach the upstream within 10s")
	}
	sess.Close("test")
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the dispatch did not end within 10s of its session's close")
	}
}

// endFunc is a CallEnd that calls itself when the dispatch is done.
type endFunc func()

func (f endFunc) LetGo() {}
func (f endFunc) Done()  { f() }
