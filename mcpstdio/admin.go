package mcpstdio

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpsse/caddy-mcp-sse/session"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the admin.api.mcp_stdio module: the running processes of
// every mcp_stdio handler, through Caddy's admin endpoint.
//
//	GET    /mcp_stdio/processes           every running process, oldest first, with a count
//	DELETE /mcp_stdio/processes/{session} end that session and its process
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mcp_stdio",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/mcp_stdio/processes", Handler: caddy.AdminHandlerFunc(a.list)},
		{Pattern: "/mcp_stdio/processes/", Handler: caddy.AdminHandlerFunc(a.one)},
	}
}

// processInfo is one process as the admin API shows it.
type processInfo struct {
	Session  string    `json:"session"`
	PID      int       `json:"pid"`
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	Identity string    `json:"identity,omitempty"`
	// Mode is "legacy_session" for a process of one Mcp-Session-Id, or
	// "sessionless" for the process of a process_key.
	Mode string `json:"mode"`
	// KeyFingerprint names the process_key value of a sessionless
	// process (the first 16 hex digits of its SHA-256): the value may be
	// a cookie or a token, and the admin endpoint is open to every local
	// process.
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	// AwaitingInput counts its requests awaiting a client's retry.
	AwaitingInput int    `json:"awaiting_input,omitempty"`
	MessagesIn    int64  `json:"messages_in"`
	MessagesOut   int64  `json:"messages_out"`
	LastStderr    string `json:"last_stderr,omitempty"`
	Ending        string `json:"ending,omitempty"` // why, while it is being stopped
}

func info(s *mcpSession) processInfo {
	in, out := s.proc.Counts()
	reason, _ := s.endInfo()
	p := processInfo{
		Session: s.id, PID: s.proc.PID(), Command: s.command, Started: s.started.UTC(), Mode: "legacy_session",
		Identity: s.identity, MessagesIn: in, MessagesOut: out, LastStderr: s.proc.LastStderr(), Ending: reason,
	}
	if s.keyed != nil {
		p.Mode, p.KeyFingerprint, p.Identity = "sessionless", s.keyed.fingerprint, ""
		s.mu.Lock()
		p.AwaitingInput = len(s.keyed.parked)
		s.mu.Unlock()
	}
	return p
}

func (adminAPI) list(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	list := make([]processInfo, 0)
	if reg := currentRegistry(); reg != nil {
		for _, s := range reg.list() {
			list = append(list, info(s))
		}
	}
	slices.SortFunc(list, func(a, b processInfo) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.Session, b.Session)
	})
	return writeJSON(w, http.StatusOK, map[string]any{"count": len(list), "processes": list})
}

// one serves DELETE /mcp_stdio/processes/{session}: it ends the session
// and answers once the process is gone (or the stop is still under way
// after the longest it may take).
func (adminAPI) one(w http.ResponseWriter, r *http.Request) error {
	id := strings.TrimPrefix(r.URL.Path, "/mcp_stdio/processes/")
	if r.Method != http.MethodDelete {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	if !session.ValidID(id) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("malformed session id")}
	}
	reg := currentRegistry()
	var s *mcpSession
	ok := false
	if reg != nil {
		s, ok = reg.find(id)
	}
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no session %s", id)}
	}
	s.end(ReasonAdmin, nil)
	select {
	case <-s.gone:
		return writeJSON(w, http.StatusOK, map[string]any{"ended": id, "exit": s.proc.Exit().String()})
	case <-time.After(shutdownWait()):
		return writeJSON(w, http.StatusAccepted, map[string]any{"ending": id})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// Interface guard
var _ caddy.AdminRouter = adminAPI{}
