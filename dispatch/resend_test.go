package dispatch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// TestServeSendsAgainWhatWasDroppedUnsent: a 499 for a request the
// transport never began to write, while the request's own context is
// alive, is sent again, each time as a request of its own, at most
// maxSends times; any other reply is the reply.
func TestServeSendsAgainWhatWasDroppedUnsent(t *testing.T) {
	tests := []struct {
		name   string
		before func(r *http.Request, cancel context.CancelFunc) // what happens before the 499
		sends  int
	}{
		{"dropped unsent", func(*http.Request, context.CancelFunc) {}, maxSends},
		{"written, then canceled", func(r *http.Request, _ context.CancelFunc) {
			httptrace.ContextClientTrace(r.Context()).WroteRequest(httptrace.WroteRequestInfo{})
		}, 1},
		{"canceled through its own context", func(_ *http.Request, cancel context.CancelFunc) { cancel() }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Dispatcher{Logger: zap.NewNop()}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tmpl := template(httptest.NewRequest(http.MethodPost, "/message?session_id=s", nil), nil)
			rep := newReply(1 << 20)
			seen := map[*http.Request]bool{}
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				if seen[r] {
					t.Error("the same request sent twice")
				}
				seen[r] = true
				tt.before(r, cancel)
				w.WriteHeader(statusClientClosed)
				return nil
			})
			err := d.serve(next, rep, func() *http.Request { return tmpl.request(ctx, http.MethodDelete, nil, 0, rep) })
			if err != nil || len(seen) != tt.sends || rep.status != statusClientClosed {
				t.Errorf("sent %d times, reply %d, err %v; want %d sends and the 499", len(seen), rep.status, err, tt.sends)
			}
		})
	}

	// A reply that is not a 499 is taken at once.
	d := &Dispatcher{Logger: zap.NewNop()}
	tmpl := template(httptest.NewRequest(http.MethodPost, "/message?session_id=s", nil), nil)
	rep := newReply(1 << 20)
	var sends int
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		sends++
		w.WriteHeader(http.StatusAccepted)
		return nil
	})
	if err := d.serve(next, rep, func() *http.Request { return tmpl.request(context.Background(), http.MethodDelete, nil, 0, rep) }); err != nil || sends != 1 || rep.status != http.StatusAccepted {
		t.Errorf("202: sent %d times, reply %d, err %v", sends, rep.status, err)
	}
}
