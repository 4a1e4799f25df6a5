package mcpsse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the admin.api.mcp_sse module: the live sessions of every
// mcp_sse handler, through Caddy's admin endpoint. It reads the same
// store the handlers use, so it sees across config reloads.
//
//	GET    /mcp_sse/sessions               every live session, sorted, with a count
//	GET    /mcp_sse/sessions/{id}          one session
//	DELETE /mcp_sse/sessions/{id}          close it (its upstream session gets its DELETE)
//	POST   /mcp_sse/sessions/{id}/messages push a JSON-RPC notification onto its stream
//	POST   /mcp_sse/broadcast              push a notification to every live session
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mcp_sse",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/mcp_sse/sessions", Handler: caddy.AdminHandlerFunc(a.sessions)},
		{Pattern: "/mcp_sse/sessions/", Handler: caddy.AdminHandlerFunc(a.session)},
		{Pattern: "/mcp_sse/broadcast", Handler: caddy.AdminHandlerFunc(a.broadcast)},
	}
}

// sessionInfo is one session as the admin API shows it.
type sessionInfo struct {
	ID                string    `json:"id"`
	OpenedAt          time.Time `json:"opened_at"`
	LastActivity      time.Time `json:"last_activity,omitzero"`
	RemoteAddr        string    `json:"remote_addr"`
	Identity          string    `json:"identity,omitempty"`
	UpstreamSessionID string    `json:"upstream_session_id,omitempty"`
	ProtocolVersion   string    `json:"protocol_version,omitempty"`
	// UpstreamProtocol is the generation the session is bridged to:
	// "2026-07-28" (sessionless) or "legacy", once the client initialized.
	UpstreamProtocol string `json:"upstream_protocol,omitempty"`
	QueueDepth       int    `json:"queue_depth"`
	MessagesIn       int64  `json:"messages_in"`
	MessagesOut      int64  `json:"messages_out"`
	KeepalivesSent   int64  `json:"keepalives_sent"`
	// State is streaming (a stream holds the session) or detached (it
	// waits for its client to re-attach), since StateSince.
	State      string    `json:"state"`
	StateSince time.Time `json:"state_since,omitzero"`
	Reattaches int       `json:"reattaches"`
	// Owner is the instance holding the session, in cluster mode.
	Owner string `json:"owner,omitempty"`
}

func info(s *session.Session) sessionInfo {
	upID, version := s.Upstream()
	in, out := s.Counts()
	state, since, reattaches := s.State()
	return sessionInfo{
		State: state, StateSince: since.UTC(), Reattaches: reattaches,
		ID: s.ID, OpenedAt: s.Opened.UTC(), LastActivity: s.LastActivity().UTC(), RemoteAddr: s.RemoteAddr,
		Identity: s.Identity, UpstreamSessionID: upID, ProtocolVersion: version, UpstreamProtocol: s.UpstreamProtocol(), QueueDepth: s.QueueLen(),
		MessagesIn: in, MessagesOut: out, KeepalivesSent: s.Keepalives(),
	}
}

func liveSessions() []*session.Session {
	st, ok := currentStore()
	if !ok {
		return nil
	}
	var list []*session.Session
	st.Range(func(s *session.Session) bool {
		if !s.Closed() {
			list = append(list, s)
		}
		return true
	})
	return list
}

func (adminAPI) sessions(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	list := make([]sessionInfo, 0)
	if m, ok := currentMember(); ok {
		var err error
		if list, err = m.sessions(r.Context()); err != nil {
			return err
		}
	} else {
		for _, s := range liveSessions() {
			list = append(list, info(s))
		}
	}
	slices.SortFunc(list, func(a, b sessionInfo) int {
		if c := a.OpenedAt.Compare(b.OpenedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return writeJSON(w, http.StatusOK, map[string]any{"count": len(list), "sessions": list})
}

// session serves /mcp_sse/sessions/{id} and /mcp_sse/sessions/{id}/messages.
func (a adminAPI) session(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/mcp_sse/sessions/")
	id, sub, _ := strings.Cut(rest, "/")
	if !session.ValidID(id) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("malformed session id")}
	}
	st, ok := currentStore()
	var s *session.Session
	if ok {
		s, ok = st.Get(id)
	}
	if m, inCluster := currentMember(); inCluster {
		if o, owned := m.ownedSession(id); !owned || o.sess != s || s.Closed() {
			return m.remoteSession(w, r, id, sub)
		}
	}
	if !ok || s.Closed() {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no session %s", id)}
	}
	switch {
	case sub == "" && r.Method == http.MethodGet:
		si := info(s)
		if m, ok := currentMember(); ok {
			si.Owner = m.node.Instance()
		}
		return writeJSON(w, http.StatusOK, si)
	case sub == "" && r.Method == http.MethodDelete:
		s.Close(session.ReasonAdmin)
		// The stream's own goroutine removes the session; wait for it, so
		// that the reply means "gone from the list".
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, still := st.Get(id); !still {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		return writeJSON(w, http.StatusOK, map[string]any{"closed": id})
	case sub == "messages" && r.Method == http.MethodPost:
		msg, err := readNotification(r)
		if err != nil {
			return err
		}
		if err := push(r.Context(), s, msg); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
		}
		return writeJSON(w, http.StatusAccepted, map[string]any{"queued": 1})
	case sub == "" || sub == "messages":
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	default:
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such endpoint")}
	}
}

func (adminAPI) broadcast(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	msg, err := readNotification(r)
	if err != nil {
		return err
	}
	if m, ok := currentMember(); ok {
		return m.broadcast(w, r, msg)
	}
	sessions := liveSessions()
	sent := 0
	for _, s := range sessions {
		if push(r.Context(), s, msg) == nil {
			sent++
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"sent": sent, "sessions": len(sessions)})
}

// adminPushWait bounds how long a push waits for room in a full queue; a
// queue still full after it means the session is not reading, and it is
// closed as a slow consumer like any other.
const adminPushWait = time.Second

func push(ctx context.Context, s *session.Session, msg []byte) error {
	return s.Send(ctx, msg, adminPushWait)
}

// readNotification reads a body that must be one JSON-RPC notification:
// requests would need a response path back to the operator, which the
// admin API does not have.
func readNotification(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	if len(body) > 1<<20 {
		return nil, caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: errors.New("body over 1 MiB")}
	}
	msgs, err := dispatch.Parse(body)
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	if len(msgs) != 1 || msgs[0].Method == "" || msgs[0].ID != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest,
			Err: errors.New("body must be one JSON-RPC notification: a method and no id")}
	}
	return bytes.Clone(msgs[0].Raw), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// Interface guard
var _ caddy.AdminRouter = adminAPI{}
