package mcpstdio

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func testSession(maxQueued int64, sendTimeout time.Duration) *mcpSession {
	return &mcpSession{
		id: "test", logger: zap.NewNop(), sendTimeout: sendTimeout, maxQueued: maxQueued,
		calls: make(map[string]*call), tokens: make(map[string]*call), endedCh: make(chan struct{}),
	}
}

func progress(size int) []byte {
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1,"message":%q}}`, strings.Repeat("x", size))
}

// TestStreamBoundInBytes: a stream whose client reads nothing holds at
// most max_queued_bytes of messages; once it has stayed full for
// send_timeout it is cut, and what the process sends next neither waits
// for it nor piles up: the backlog is bounded in bytes too.
func TestStreamBoundInBytes(t *testing.T) {
	const limit = 64 << 10
	s := testSession(limit, 200*time.Millisecond)
	st := newStream(true)
	call := inMessage{raw: json.RawMessage(`{}`), id: json.RawMessage(`1`), token: json.RawMessage(`"p"`), req: true}
	if _, _, err := s.register(st, []inMessage{call}, 0); err != nil {
		t.Fatal(err)
	}
	msg := progress(16 << 10)
	routed := make(chan struct{})
	go func() {
		defer close(routed)
		for range 100 {
			s.route(msg)
		}
	}()
	select {
	case <-st.cut:
	case <-time.After(10 * time.Second):
		t.Fatal("the unread stream was not cut within 10s")
	}
	queued := 0
	for len(st.out) > 0 {
		queued += len((<-st.out).msg)
	}
	if queued > limit {
		t.Errorf("%d bytes queued for a client that reads nothing, over max_queued_bytes %d", queued, limit)
	}
	select {
	case <-routed:
	case <-time.After(10 * time.Second):
		t.Fatal("the process's output still waits for a cut stream")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backlogLen > limit || len(s.backlog) == 0 {
		t.Errorf("backlog of %d messages, %d bytes: want some, within max_queued_bytes %d", len(s.backlog), s.backlogLen, limit)
	}
}

// TestMessageLargerThanBoundFitsEmptyStream: a message larger than
// max_queued_bytes still goes out, alone, to a client that reads.
func TestMessageLargerThanBoundFitsEmptyStream(t *testing.T) {
	s := testSession(1<<10, 5*time.Second)
	st := newStream(true)
	call := inMessage{raw: json.RawMessage(`{}`), id: json.RawMessage(`1`), token: json.RawMessage(`"p"`), req: true}
	if _, _, err := s.register(st, []inMessage{call}, 0); err != nil {
		t.Fatal(err)
	}
	msg := progress(4 << 10)
	go func() {
		for range 3 {
			s.route(msg)
		}
	}()
	for i := range 3 {
		select {
		case it := <-st.out:
			st.written(len(it.msg))
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not delivered within 10s", i)
		}
	}
	if closed(st.cut) {
		t.Error("a stream that was read was cut")
	}
}
