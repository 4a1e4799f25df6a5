package sse

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testQueue is a minimal Queue.
type testQueue struct {
	mu     sync.Mutex
	items  [][]byte
	closed bool
	ready  chan struct{}
}

func newTestQueue() *testQueue { return &testQueue{ready: make(chan struct{}, 1)} }

func (q *testQueue) push(m []byte) {
	q.mu.Lock()
	q.items = append(q.items, m)
	q.mu.Unlock()
	q.Wake()
}

func (q *testQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.Wake()
}

func (q *testQueue) Ready() <-chan struct{} { return q.ready }

func (q *testQueue) Take(dst [][]byte) ([][]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst, q.items...)
	q.items = nil
	return dst, q.closed
}

func (q *testQueue) Wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// serveStream runs one Stream behind a real HTTP server and returns the
// client's response body and a channel with Run's result.
func serveStream(t *testing.T, opts Options, messages *testQueue) (io.ReadCloser, <-chan error) {
	t.Helper()
	result := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		s := NewStream(w, http.NewResponseController(w), opts)
		result <- s.Run(r.Context(), "/message?session_id=abc", messages)
	}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp.Body, result
}

func readEvents(t *testing.T, r io.Reader, n int) []Event {
	t.Helper()
	// Events that do not come within the deadline fail the test: the body
	// is closed under the read.
	if c, ok := r.(io.Closer); ok {
		timer := time.AfterFunc(10*time.Second, func() { c.Close() })
		defer timer.Stop()
	}
	var p Parser
	var got []Event
	br := bufio.NewReader(r)
	buf := make([]byte, 4096)
	for len(got) < n {
		k, err := br.Read(buf)
		if err != nil {
			t.Fatalf("reading stream after %d events: %v", len(got), err)
		}
		if err := p.Feed(buf[:k], func(e Event) error { got = append(got, e); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// runResult waits for Run's result.
func runResult(t *testing.T, result <-chan error) error {
	t.Helper()
	select {
	case err := <-result:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s")
		return nil
	}
}

func TestStreamDelivers(t *testing.T) {
	messages := newTestQueue()
	body, result := serveStream(t, Options{Keepalive: time.Hour, KeepaliveEvent: true, Retry: 3 * time.Second}, messages)

	messages.push([]byte(`{"n":1}`))
	messages.push([]byte(`{"n":2}`))
	got := readEvents(t, body, 4)
	want := []Event{
		{Name: EventEndpoint, Data: []byte("/message?session_id=abc")},
		{Name: EventKeepalive, Data: []byte("{}")},
		{Name: EventMessage, Data: []byte(`{"n":1}`)},
		{Name: EventMessage, Data: []byte(`{"n":2}`)},
	}
	for i := range want {
		if got[i].Name != want[i].Name || string(got[i].Data) != string(want[i].Data) {
			t.Errorf("event %d = %q %q, want %q %q", i, got[i].Name, got[i].Data, want[i].Name, want[i].Data)
		}
	}
	messages.close()
	if err := runResult(t, result); err != nil {
		t.Errorf("Run after the queue closed = %v, want nil", err)
	}
}

func TestStreamKeepalive(t *testing.T) {
	messages := newTestQueue()
	body, _ := serveStream(t, Options{Keepalive: 20 * time.Millisecond, KeepaliveEvent: true}, messages)
	got := readEvents(t, body, 4)
	for _, e := range got[1:] {
		if e.Name != EventKeepalive {
			t.Errorf("idle stream sent %q, want keepalives", e.Name)
		}
	}
	messages.close()
}

// By default a keepalive is a comment line, which every SSE parser
// skips: no event, no id, no retry, nothing a client could decode.
func TestStreamKeepaliveComment(t *testing.T) {
	messages := newTestQueue()
	body, _ := serveStream(t, Options{Keepalive: 20 * time.Millisecond, Retry: time.Second}, messages)
	timer := time.AfterFunc(10*time.Second, func() { body.Close() })
	defer timer.Stop()
	var got []byte
	buf := make([]byte, 4096)
	for bytes.Count(got, []byte(": keepalive\n\n")) < 3 {
		n, err := body.Read(buf)
		if err != nil {
			t.Fatalf("reading after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	opening := "event: endpoint\ndata: /message?session_id=abc\nretry: 1000\n\n"
	if !bytes.HasPrefix(got, []byte(opening)) {
		t.Fatalf("stream starts %q, want %q", got, opening)
	}
	if rest := bytes.ReplaceAll(got[len(opening):], []byte(": keepalive\n\n"), nil); len(rest) != 0 {
		t.Errorf("between keepalives the stream sent %q", rest)
	}
	messages.close()
}

// journalQueue is a testQueue that numbers its frames.
type journalQueue struct {
	*testQueue
	mu      sync.Mutex
	next    uint64
	flushed uint64
}

func (q *journalQueue) TakeNumbered(dst [][]byte) ([][]byte, uint64, bool) {
	n := len(dst)
	dst, closed := q.Take(dst)
	q.mu.Lock()
	defer q.mu.Unlock()
	first := q.next + 1
	q.next += uint64(len(dst) - n)
	return dst, first, closed
}

func (q *journalQueue) Stamp([]byte) (uint64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.next++
	return q.next, true
}

func (q *journalQueue) Flushed(seq uint64) {
	q.mu.Lock()
	q.flushed = seq
	q.mu.Unlock()
}

// With an id prefix, the opening frame says what the client has seen,
// the frames of a resumed session follow it with their own ids, and every
// message frame after gets the next number from the journal.
func TestStreamFrameIDs(t *testing.T) {
	q := &journalQueue{testQueue: newTestQueue(), next: 7}
	result := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := NewStream(w, http.NewResponseController(w), Options{IDPrefix: "tok.", Keepalive: time.Hour})
		s.Resume(5, []Frame{{Seq: 6, Data: []byte(`{"n":6}`)}, {Seq: 7, Data: []byte(`{"n":7}`)}})
		result <- s.Run(r.Context(), "/message?session_id=abc", q)
	}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	q.push([]byte(`{"n":8}`))
	got := readEvents(t, resp.Body, 4)
	want := []struct{ name, id, data string }{
		{EventEndpoint, "tok.5", "/message?session_id=abc"},
		{EventMessage, "tok.6", `{"n":6}`},
		{EventMessage, "tok.7", `{"n":7}`},
		{EventMessage, "tok.8", `{"n":8}`},
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].ID != w.id || string(got[i].Data) != w.data {
			t.Errorf("event %d = %q id %q %q, want %q id %q %q", i, got[i].Name, got[i].ID, got[i].Data, w.name, w.id, w.data)
		}
	}
	eventually := time.Now().Add(10 * time.Second)
	for {
		q.mu.Lock()
		f := q.flushed
		q.mu.Unlock()
		if f == 8 {
			break
		}
		if time.Now().After(eventually) {
			t.Fatalf("journal told of frames flushed up to %d, want 8", f)
		}
		time.Sleep(10 * time.Millisecond)
	}
	q.close()
	if err := runResult(t, result); err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestStreamClientGone(t *testing.T) {
	messages := newTestQueue()
	body, result := serveStream(t, Options{}, messages)
	readEvents(t, body, 1)
	body.Close()
	if err := runResult(t, result); !errors.Is(err, ErrClientGone) {
		t.Errorf("Run after the client left = %v, want ErrClientGone", err)
	}
}

// A stream whose idle frames come without pause trips the guard; here the
// "spin" is a keepalive interval far below what the guard allows.
func TestStreamSpinGuard(t *testing.T) {
	messages := newTestQueue()
	body, result := serveStream(t, Options{Keepalive: time.Millisecond, RapidYieldMax: 5, RapidYieldWindow: time.Second}, messages)
	go io.Copy(io.Discard, body)
	var spin *SpinError
	if err := runResult(t, result); !errors.As(err, &spin) {
		t.Fatalf("Run = %v, want a SpinError", err)
	}
	if spin.Idle < 6 || spin.Max != 5 {
		t.Errorf("SpinError = %+v, want at least 6 idle frames and max 5", spin)
	}
}

// A burst of real messages far above the guard's limit passes whole.
func TestStreamBurstDoesNotTripGuard(t *testing.T) {
	const n = 2000
	messages := newTestQueue()
	for range n {
		messages.push([]byte(`{"jsonrpc":"2.0","method":"notifications/message"}`))
	}
	body, result := serveStream(t, Options{Keepalive: time.Hour, KeepaliveEvent: true, RapidYieldMax: 5, RapidYieldWindow: time.Second}, messages)
	got := readEvents(t, body, n+2)
	if len(got) != n+2 {
		t.Fatalf("got %d events, want %d", len(got), n+2)
	}
	messages.close()
	if err := runResult(t, result); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func TestSendTimeoutClassified(t *testing.T) {
	if err := classify(errors.Join(errors.New("write tcp"), os.ErrDeadlineExceeded)); !errors.Is(err, ErrSendTimeout) {
		t.Errorf("classify(deadline exceeded) = %v, want ErrSendTimeout", err)
	}
	if err := classify(errors.New("broken pipe")); errors.Is(err, ErrSendTimeout) {
		t.Errorf("classify(broken pipe) = %v, want a plain write error", err)
	}
}

// With Offload set, every write and flush runs through it (here on a
// goroutine of its own, as the module does), and the stream delivers the
// same frames.
func TestStreamOffload(t *testing.T) {
	var offloads atomic.Int32
	offload := func(fn func()) {
		offloads.Add(1)
		done := make(chan struct{})
		go func() { defer close(done); fn() }()
		<-done
	}
	messages := newTestQueue()
	body, result := serveStream(t, Options{Keepalive: 30 * time.Millisecond, KeepaliveEvent: true, Offload: offload}, messages)
	messages.push([]byte(`{"n":1}`))
	got := readEvents(t, body, 4) // endpoint, keepalive, message, keepalive
	if got[2].Name != EventMessage || string(got[2].Data) != `{"n":1}` || got[3].Name != EventKeepalive {
		t.Fatalf("events = %+v", got)
	}
	messages.close()
	if err := runResult(t, result); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	// The opening frames, the message, and at least one keepalive.
	if n := offloads.Load(); n < 3 {
		t.Errorf("%d writes went through Offload, want at least 3", n)
	}
}

// Messages reach the client in the order they were handed over, whether
// Run writes them from the queue or Deliver writes them (with whatever
// was queued ahead of them) on the sender's goroutine.
func TestDeliverKeepsOrderWithQueue(t *testing.T) {
	messages := newTestQueue()
	var stream *Stream
	started := make(chan struct{})
	result := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream = NewStream(w, http.NewResponseController(w), Options{})
		close(started)
		result <- stream.Run(r.Context(), "/m", messages)
	}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's handler did not start within 10s")
	}
	readEvents(t, resp.Body, 1) // the endpoint: Run is live
	const n = 2000
	go func() {
		for i := range n {
			m := []byte(fmt.Sprintf(`{"n":%d}`, i))
			// Alternate: half queued (Run writes them), half delivered
			// when the writer is free (queued otherwise).
			if i%2 == 0 {
				messages.push(m)
			} else if ok, err := stream.Deliver(m); err != nil {
				t.Errorf("Deliver: %v", err)
			} else if !ok {
				messages.push(m)
			}
		}
	}()
	got := readEvents(t, resp.Body, n)
	for i, e := range got {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(e.Data) != want {
			t.Fatalf("event %d = %s, want %s", i, e.Data, want)
		}
	}
	messages.close()
	if err := runResult(t, result); err != nil {
		t.Errorf("Run = %v", err)
	}
	if ok, _ := stream.Deliver([]byte(`{}`)); ok {
		t.Error("Deliver wrote after Run returned")
	}
}

// Deliver writes nothing before the endpoint frame is out.
func TestDeliverBeforeRun(t *testing.T) {
	rec := httptest.NewRecorder()
	s := NewStream(rec, http.NewResponseController(rec), Options{})
	if ok, err := s.Deliver([]byte(`{}`)); ok || err != nil || rec.Body.Len() != 0 {
		t.Fatalf("Deliver before Run = %v, %v, wrote %q", ok, err, rec.Body.String())
	}
}

// A write by Deliver that fails, or panics, ends Run with that error.
func TestDeliverFailureEndsRun(t *testing.T) {
	t.Run("error", func(t *testing.T) { testDeliverFailure(t, &failingWriter{}, "broken") })
	t.Run("panic", func(t *testing.T) { testDeliverFailure(t, &failingWriter{panics: true}, "panic") })
	// The session a failed write closes ends the stream's context too,
	// while the write still returns: Run reports the write's error, not a
	// client that went away (a send_timeout was logged as client_gone).
	t.Run("context ends as the write fails", func(t *testing.T) {
		testDeliverFailure(t, &failingWriter{endsContext: true}, "broken")
	})
}

func testDeliverFailure(t *testing.T, w *failingWriter, want string) {
	messages := newTestQueue()
	s := NewStream(w, nopController{}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.cancel = cancel
	result := make(chan error, 1)
	go func() { result <- s.Run(ctx, "/m", messages) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := s.Deliver([]byte(`{}`))
		if ok {
			if err == nil {
				t.Fatal("Deliver's failed write reported no error")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Deliver never found the stream running")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-result:
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run = %v, want the write's %s", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end after Deliver's write failed")
	}
}

// failingWriter takes the first write (the endpoint) and fails the rest,
// or panics on them as Caddy's writers may (http.ErrAbortHandler).
type failingWriter struct {
	mu          sync.Mutex
	writes      int
	panics      bool
	endsContext bool // the failing write ends Run's context first, and waits for Run to see it
	cancel      context.CancelFunc
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.writes > 1 {
		if w.endsContext {
			w.cancel()
			time.Sleep(50 * time.Millisecond) // let Run see the context end before the write returns
		}
		if w.panics {
			panic(http.ErrAbortHandler)
		}
		return 0, errors.New("broken pipe")
	}
	return len(p), nil
}

type nopController struct{}

func (nopController) Flush() error                     { return nil }
func (nopController) SetWriteDeadline(time.Time) error { return nil }

// A write that panics in Run leaves the stream unlocked and not live: the
// panic reaches Run's caller (net/http recovers it), and a later Deliver
// neither blocks nor writes.
func TestRunPanicLeavesStreamUnlocked(t *testing.T) {
	messages := newTestQueue()
	s := NewStream(&failingWriter{panics: true}, nopController{}, Options{})
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		s.Run(context.Background(), "/m", messages)
	}()
	messages.push([]byte(`{}`)) // Run's write of it panics
	select {
	case p := <-panicked:
		if p != http.ErrAbortHandler {
			t.Fatalf("Run's caller saw %v, want http.ErrAbortHandler", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run neither returned nor panicked")
	}
	done := make(chan bool, 1)
	go func() { ok, _ := s.Deliver([]byte(`{}`)); done <- ok }()
	select {
	case ok := <-done:
		if ok {
			t.Error("Deliver wrote to a stream whose Run panicked")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Deliver blocked: the stream was left locked")
	}
}
