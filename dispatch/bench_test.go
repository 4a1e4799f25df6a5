package dispatch

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/session"
)

// BenchmarkDispatch measures one message's way through the bridge without
// the network: parse, take a turn, prepare the upstream request, call the
// next handler (here one that answers in JSON at once), relay the reply
// onto the session's queue, and take it off.
func BenchmarkDispatch(b *testing.B) {
	for _, mode := range []string{"json", "sse"} {
		b.Run(mode, func(b *testing.B) {
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				body, _ := io.ReadAll(r.Body)
				id := body[strings.Index(string(body), `"id":`)+5 : strings.Index(string(body), `,"method"`)]
				reply := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"hello"}]}}`, id)
				if mode == "sse" {
					w.Header().Set("Content-Type", "text/event-stream")
					fmt.Fprintf(w, "event: message\ndata: %s\n\n", reply)
				} else {
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, reply)
				}
				return nil
			})
			d := &Dispatcher{Timeout: time.Minute, MaxMessageSize: 1 << 20, QueueWait: time.Second, Logger: zap.NewNop()}
			sess := session.New(session.NewID(), "127.0.0.1:1", 1024)
			sess.SetInitialized(true) // as after the client's initialize
			att := sess.Attach(nil)
			post := httptest.NewRequest(http.MethodPost, "/message?session_id="+sess.ID, nil)
			var batch [][]byte
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}`, i)
				msgs, err := Parse([]byte(body))
				if err != nil {
					b.Fatal(err)
				}
				d.Go(Call{Session: sess, Message: msgs[0], Post: post, Next: next})
				for len(batch) == 0 {
					<-att.Ready()
					batch, _ = att.Take(batch[:0])
				}
				batch = batch[:0]
			}
		})
	}
}
