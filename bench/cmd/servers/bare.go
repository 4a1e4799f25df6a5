package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// bare speaks just enough HTTP+SSE to echo a tools/call: a map of
// sessions, a channel each, a frame per message and a flush. It parses
// and encodes JSON like any server must, and nothing more: the floor of
// the protocol on this machine.
type bare struct {
	mu       sync.Mutex
	sessions map[string]chan []byte
}

func newBare() *bare { return &bare{sessions: make(map[string]chan []byte)} }

func (b *bare) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/sse":
		b.stream(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/message":
		b.message(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (b *bare) stream(w http.ResponseWriter, r *http.Request) {
	id := rand.Text()
	ch := make(chan []byte, 64)
	b.mu.Lock()
	b.sessions[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.sessions, id)
		b.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprintf(w, "event: endpoint\ndata: /message?session_id=%s\n\n", id)
	f := w.(http.Flusher)
	f.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg := <-ch:
			w.Write([]byte("event: message\ndata: "))
			w.Write(msg)
			w.Write([]byte("\n\n"))
			f.Flush()
		}
	}
}

func (b *bare) message(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	ch, ok := b.sessions[r.URL.Query().Get("session_id")]
	b.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	var req rpcRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	if req.ID == nil {
		return
	}
	switch {
	case req.Method == "initialize":
		ch <- initializeResult(req.ID)
	case req.Method == "tools/call" && req.Params.Name == "burst":
		for i := range req.Params.Arguments.Count {
			ch <- progress(req.Params.Meta.ProgressToken, i)
		}
		ch <- echoResult(req.ID, "done")
	case req.Method == "tools/call":
		ch <- echoResult(req.ID, req.Params.Arguments.Text)
	default:
		ch <- fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":{}}`, req.ID)
	}
}
