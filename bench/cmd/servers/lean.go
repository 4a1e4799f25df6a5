package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// rpcRequest is what the lean and bare servers read of a request.
type rpcRequest struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		Name      string `json:"name"`
		Arguments struct {
			Text  string `json:"text"`
			Count int    `json:"count"`
		} `json:"arguments"`
		Meta struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	} `json:"params"`
}

func initializeResult(id json.RawMessage) []byte {
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2024-11-05","capabilities":{"tools":{}},"serverInfo":{"name":"bench","version":"1"}}}`, id)
}

func echoResult(id json.RawMessage, text string) []byte {
	t, _ := json.Marshal(text)
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":%s}]}}`, id, t)
}

func progress(token json.RawMessage, i int) []byte {
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":%s,"progress":%d}}`, token, i)
}

// leanHandler is a minimal Streamable HTTP server: it answers initialize
// and tools/call with application/json, accepts notifications with 202,
// and streams the burst tool's notifications as text/event-stream. It
// shows what the bridge itself costs, with an upstream that costs little.
func leanHandler() http.Handler {
	var next int
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var req rpcRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		switch {
		case req.Method == "initialize":
			next++
			w.Header().Set("Mcp-Session-Id", "lean-"+strconv.Itoa(next))
			w.Header().Set("Content-Type", "application/json")
			w.Write(initializeResult(req.ID))
		case req.Method == "tools/call" && req.Params.Name == "burst":
			w.Header().Set("Content-Type", "text/event-stream")
			buf := make([]byte, 0, 64<<10)
			for i := range req.Params.Arguments.Count {
				buf = append(buf, "event: message\ndata: "...)
				buf = append(buf, progress(req.Params.Meta.ProgressToken, i)...)
				buf = append(buf, "\n\n"...)
				if len(buf) > 60<<10 {
					w.Write(buf)
					buf = buf[:0]
				}
			}
			buf = append(buf, "event: message\ndata: "...)
			buf = append(buf, echoResult(req.ID, "done")...)
			w.Write(append(buf, "\n\n"...))
		case req.Method == "tools/call":
			w.Header().Set("Content-Type", "application/json")
			w.Write(echoResult(req.ID, req.Params.Arguments.Text))
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, req.ID)
		}
	})
}
