package mcpsse

// The admin API in cluster mode: the session list covers the cluster,
// and closing or pushing to a session owned elsewhere is asked of its
// owner.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// currentMember returns the process's cluster membership, if any.
func currentMember() (*clusterMember, bool) {
	var m *clusterMember
	members.Range(func(_, v any) bool {
		m = v.(*clusterMember)
		return false
	})
	return m, m != nil
}

// clusterInfo is a session as the cluster's metadata shows it; sessions
// owned here show what this instance knows besides. The metadata decides
// who owns it: an instance whose session another took over holds its
// copy until it hears of the takeover, and must not name itself meanwhile.
func (m *clusterMember) info(meta cluster.Meta) sessionInfo {
	if o, ok := m.ownedSession(meta.ID); ok && !o.sess.Closed() && meta.Owner == m.node.Instance() {
		si := info(o.sess)
		si.Owner = m.node.Instance()
		return si
	}
	state := session.StateStreaming
	if meta.Detached || meta.LeaseLeft <= 0 {
		state = session.StateDetached
	}
	return sessionInfo{
		ID: meta.ID, OpenedAt: meta.Opened.UTC(), RemoteAddr: meta.RemoteAddr, Identity: meta.Identity,
		UpstreamSessionID: meta.UpstreamID, ProtocolVersion: meta.Protocol, State: state, Owner: meta.Owner,
	}
}

// clusterSessions lists every session of the cluster.
func (m *clusterMember) sessions(ctx context.Context) ([]sessionInfo, error) {
	metas, err := m.node.List(ctx)
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("listing the cluster's sessions: %w", err)}
	}
	list := make([]sessionInfo, 0, len(metas))
	for _, meta := range metas {
		list = append(list, m.info(meta))
	}
	return list, nil
}

// remoteSession serves /mcp_sse/sessions/{id}[/messages] for a session
// this instance does not hold.
func (m *clusterMember) remoteSession(w http.ResponseWriter, r *http.Request, id, sub string) error {
	meta, err := m.node.Lookup(r.Context(), id)
	switch {
	case errors.Is(err, cluster.ErrGone):
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no session %s", id)}
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("looking up session %s in the cluster: %w", id, err)}
	}
	switch {
	case sub == "" && r.Method == http.MethodGet:
		return writeJSON(w, http.StatusOK, m.info(meta))
	case sub == "" && r.Method == http.MethodDelete:
		n, err := m.node.Send(r.Context(), meta.Owner, cluster.Control{Op: cluster.OpClose, ID: id})
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
		}
		if n == 0 {
			// The owner is gone: nobody holds the session to close it, so
			// its metadata goes; its client's next stream is a new session.
			if err := m.node.RemoveStale(r.Context(), meta); err != nil && !errors.Is(err, cluster.ErrFenced) {
				return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
			}
		}
		// The owner removes the session as its stream ends; wait for it,
		// so that the reply means "gone from the list".
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := m.node.Lookup(r.Context(), id); errors.Is(err, cluster.ErrGone) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		return writeJSON(w, http.StatusOK, map[string]any{"closed": id, "owner": meta.Owner})
	case sub == "messages" && r.Method == http.MethodPost:
		msg, err := readNotification(r)
		if err != nil {
			return err
		}
		n, err := m.node.Send(r.Context(), meta.Owner, cluster.Control{Op: cluster.OpPush, ID: id, Data: msg})
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
		}
		if n == 0 {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable,
				Err: fmt.Errorf("session %s's owner (%s) is gone; the session waits for its client to re-attach elsewhere", id, meta.Owner)}
		}
		return writeJSON(w, http.StatusAccepted, map[string]any{"queued": 1, "owner": meta.Owner})
	case sub == "" || sub == "messages":
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	default:
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such endpoint")}
	}
}

// broadcast asks every instance to push msg to all its sessions, and
// waits (a while) for each to say how many it reached.
func (m *clusterMember) broadcast(w http.ResponseWriter, r *http.Request, msg []byte) error {
	metas, err := m.node.List(r.Context())
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	id := session.NewToken()
	counts := make(chan int, 64)
	m.broadcasts.Store(id, counts)
	defer m.broadcasts.Delete(id)
	n, err := m.node.Broadcast(r.Context(), cluster.Control{Op: cluster.OpBroadcast, ID: id, Data: msg})
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	sent, answered := 0, int64(0)
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for answered < n {
		select {
		case c := <-counts:
			sent += c
			answered++
		case <-timeout.C:
			n = answered // the rest did not answer: their counts are unknown
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"sent": sent, "sessions": len(metas), "instances": answered})
}
