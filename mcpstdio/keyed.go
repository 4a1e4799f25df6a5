package mcpstdio

// Processes for 2026-07-28 clients. Such a client has no session and no
// initialize: each POST stands alone. Its requests run on a process chosen
// by process_key (the principal, by default the authenticated identity):
// one warm process per key, started on first use with the bridge's own
// initialize, reused by every request of the key, ended by idle_timeout.
// Two keys never share a process.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/generation"
	"github.com/mcpsse/caddy-mcp-sse/internal/access"
	"github.com/mcpsse/caddy-mcp-sse/session"
)

// legacyVersion is the revision the bridge initializes a process with.
const legacyVersion = "2025-11-25"

// bridgeCapabilities are the client capabilities the bridge declares to a
// process: those whose requests it can turn into a 2026-07-28 client's
// input requests. Whether a request's own client declared them is
// checked per request.
const bridgeCapabilities = `{"elicitation":{"form":{}},"sampling":{},"roots":{}}`

// maxListeners bounds the subscriptions/listen streams open on one
// process.
const maxListeners = 64

// keyedState is what a process serving sessionless requests holds beyond
// a legacy session's.
type keyedState struct {
	// key is the process_key value: the principal every request and
	// requestState of the process must name. It may be a cookie or a
	// token: the admin API and the log show only its fingerprint.
	key         string
	fingerprint string
	// slot is the process's entry in the registry: the handler's command
	// and the key.
	slot string
	// warm is closed once the process has answered initialize, or
	// failed to; warmErr says which.
	warm    chan struct{}
	warmErr error
	// initResult is the result of the process's initialize.
	initResult json.RawMessage
	tools      generation.Tools
	relisting  atomic.Bool // a tools/list for the bindings is under way
	minted     atomic.Uint64

	// Under the session's mu:
	logLevel  string                          // the level last set on the process
	internal  map[string]chan json.RawMessage // the bridge's own requests, by id key
	parked    map[string]*call                // requests awaiting a client's retry, by id key
	listeners map[*listener]struct{}
	subs      map[string]int // URIs resources/subscribe'd on the process, by listeners holding them
	// waiting is the bytes held for clients that are away: notifications
	// of requests awaiting a retry, and the server's requests for input,
	// within max_queued_bytes for the process.
	waiting int64
}

func newKeyedState(key, slot string) *keyedState {
	return &keyedState{key: key, fingerprint: keyFingerprint(key), slot: slot, warm: make(chan struct{}),
		internal: make(map[string]chan json.RawMessage), parked: make(map[string]*call),
		listeners: make(map[*listener]struct{}), subs: make(map[string]int)}
}

// mint is a fresh id (or progress token) for the process: the bridge's,
// so that requests of several clients, each with its own ids, never
// collide on the process.
func (k *keyedState) mint(kind string) json.RawMessage {
	return json.RawMessage(`"mcp-stdio-` + kind + `-` + strconv.FormatUint(k.minted.Add(1), 10) + `"`)
}

// capabilities are the process's server capabilities (its initialize
// result's).
func (k *keyedState) capabilities() json.RawMessage {
	var r struct {
		Capabilities json.RawMessage `json:"capabilities"`
	}
	_ = json.Unmarshal(k.initResult, &r)
	return r.Capabilities
}

// processKey is the process_key of a request: who its process belongs to.
func (h *Handler) processKey(r *http.Request) string {
	return access.Identity(r, h.ProcessKey)
}

// keyFingerprint is how the admin API and the log name a process_key
// value, which may be a secret (a session cookie, a token): the first 16
// hex digits of its SHA-256. It tells processes apart, and an operator
// who knows a key finds its process; it gives no one the key.
func keyFingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}

// slot names the process of key among every handler's: the same key in
// front of another command is another process, and so is the same key
// with another environment from the request (env_from_header, env
// placeholders): a process started with one client's token must not
// serve a client that sent another token, or none.
func (h *Handler) slot(r *http.Request, key string) string {
	env := h.requestEnv(r)
	if len(env) == 0 {
		return h.slotPrefix + "\x00" + key
	}
	sum := sha256.Sum256([]byte(strings.Join(env, "\x00")))
	return h.slotPrefix + hex.EncodeToString(sum[:16]) + "\x00" + key
}

// slotPrefix names the handler's command among every handler's, with
// what else of the configuration makes its processes differ: two
// handlers of one command with other settings of the environment never
// share a process.
func slotPrefix(h *Handler) string {
	parts := append([]string{h.Command, h.Dir}, h.Args...)
	ie, _ := json.Marshal(h.InheritEnv)
	parts = append(parts, string(ie))
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:8]) + "\x00"
}

// errLimit is a process refused for max_processes or
// max_processes_per_client.
type errLimit struct {
	which string
	limit int
}

func (e *errLimit) Error() string {
	return fmt.Sprintf("too many MCP server processes (%s %d); retry later", e.which, e.limit)
}

// keyedProcess returns the warm process of key, starting it on first use.
func (h *Handler) keyedProcess(r *http.Request, key string) (*mcpSession, error) {
	slot := h.slot(r, key)
	s, created := h.reg.keyedSlot(slot, func() *mcpSession {
		s := h.newSession(r)
		s.keyed = newKeyedState(key, slot)
		return s
	})
	if created {
		go h.warmUp(r, s)
	}
	select {
	case <-s.keyed.warm:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	if s.keyed.warmErr != nil {
		return nil, s.keyed.warmErr
	}
	return s, nil
}

// warmUp starts the process of a new keyed slot and initializes it; it
// closes the slot's warm channel either way. It runs on a context of its
// own: the request that asked first may go away meanwhile.
func (h *Handler) warmUp(r *http.Request, s *mcpSession) {
	k := s.keyed
	defer close(k.warm)
	fail := func(err error) {
		k.warmErr = err
		h.reg.dropSlot(s)
	}
	if ok, which := h.reg.admit(s.client, h.MaxProcesses, h.MaxProcessesPerClient); !ok {
		limit := h.MaxProcesses
		if which == "max_processes_per_client" {
			limit = h.MaxProcessesPerClient
		}
		h.logger.Warn("refusing a sessionless process: process limit reached",
			zap.String("limit", which), zap.Int("value", limit), zap.String("client", s.client))
		fail(&errLimit{which, limit})
		return
	}
	if err := h.spawn(r.WithContext(context.WithoutCancel(r.Context())), s); err != nil {
		fail(fmt.Errorf("cannot start MCP server command %q: %w", h.Command, err))
		return
	}
	init := fmt.Sprintf(`{"protocolVersion":%q,"capabilities":%s,"clientInfo":{"name":"caddy-mcp-stdio","version":"1"}}`,
		legacyVersion, bridgeCapabilities)
	answer, err := s.ask("initialize", json.RawMessage(init), time.Duration(h.StartupTimeout))
	if err == nil {
		var res struct {
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		switch {
		case json.Unmarshal(answer, &res) != nil:
			err = errors.New("its answer to initialize is not JSON-RPC")
		case res.Error != nil:
			err = fmt.Errorf("it refused initialize: %s", res.Error.Message)
		default:
			k.initResult = res.Result
		}
	}
	if err != nil {
		h.logger.Error("ending a sessionless process: initialize failed",
			zap.String("session", session.ShortID(s.id)), zap.String("command", s.command), zap.Error(err))
		s.end(ReasonStartup, nil)
		k.warmErr = fmt.Errorf("MCP server command %q did not initialize: %w", h.Command, err)
		return
	}
	if err := s.send([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)); err != nil {
		k.warmErr = fmt.Errorf("MCP server command %q: %w", h.Command, err)
		s.end(ReasonStdin, nil)
		return
	}
	if json.Valid(k.capabilities()) && generation.Declares(k.capabilities(), "tools") {
		s.learnTools(time.Duration(h.SendTimeout))
	}
}

// learnTools lists the process's tools (every page), so that the
// Mcp-Param-* headers their x-mcp-header marks ask for are checked from
// the first call on.
func (s *mcpSession) learnTools(wait time.Duration) {
	cursor := json.RawMessage(nil)
	for page := 0; page < maxToolPages; page++ {
		params := json.RawMessage(`{}`)
		if cursor != nil {
			params = json.RawMessage(`{"cursor":` + string(cursor) + `}`)
		}
		answer, err := s.ask("tools/list", params, wait)
		if err != nil {
			return
		}
		_, bindings, _ := generation.FilterTools(answer)
		s.keyed.tools.Learn(bindings)
		var res struct {
			Result struct {
				NextCursor json.RawMessage `json:"nextCursor"`
			} `json:"result"`
		}
		if json.Unmarshal(answer, &res) != nil || len(res.Result.NextCursor) == 0 || string(res.Result.NextCursor) == "null" {
			return
		}
		cursor = res.Result.NextCursor
	}
}

// maxToolPages bounds the pages of tools/list the bridge reads on its own.
const maxToolPages = 20

var errNoAnswer = errors.New("no answer in time")

// ask sends a request of the bridge's own to the process and waits, up to
// wait, for its answer; wait 0 sends it without waiting (the answer is
// dropped).
func (s *mcpSession) ask(method string, params json.RawMessage, wait time.Duration) (json.RawMessage, error) {
	id := s.keyed.mint("bridge")
	msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if wait == 0 {
		// Nothing awaits the answer: it is dropped as one to no request,
		// and a server that never answers leaves nothing behind.
		return nil, s.send(msg)
	}
	ch := make(chan json.RawMessage, 1)
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil, errEnded
	}
	s.keyed.internal[idKey(id)] = ch
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.keyed.internal, idKey(id))
		s.mu.Unlock()
	}
	if err := s.send(msg); err != nil {
		forget()
		return nil, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case a := <-ch:
		return a, nil
	case <-t.C:
		forget()
		return nil, errNoAnswer
	case <-s.endedCh:
		forget()
		return nil, errEnded
	}
}

// setLogLevel makes level the process's log level when a request asks for
// another than the last one set, and the server logs at all.
func (s *mcpSession) setLogLevel(level string) {
	if level == "" || !generation.Declares(s.keyed.capabilities(), "logging") {
		return
	}
	s.mu.Lock()
	same := s.keyed.logLevel == level
	s.keyed.logLevel = level
	s.mu.Unlock()
	if !same {
		_, _ = s.ask("logging/setLevel", json.RawMessage(`{"level":`+strconv.Quote(level)+`}`), 0)
	}
}
