// Package mcpstdio is the Caddy HTTP handler mcp_stdio: it serves MCP's
// Streamable HTTP transport (stateful, with Mcp-Session-Id; revisions
// 2025-03-26 to 2025-11-25) in front of a stdio MCP server, running one
// process of the configured command per MCP session. Placed after
// mcp_sse in a route, it also serves HTTP+SSE clients, dispatched to it
// in process.
package mcpstdio

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/cluster"
	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/generation"
	"github.com/mcpsse/caddy-mcp-sse/internal/access"
	"github.com/mcpsse/caddy-mcp-sse/internal/postbody"
	"github.com/mcpsse/caddy-mcp-sse/session"
	"github.com/mcpsse/caddy-mcp-sse/sse"
	"github.com/mcpsse/caddy-mcp-sse/stdio"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults, applied in Provision.
const (
	DefaultMaxProcesses   = 100
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultStartupTimeout = 60 * time.Second // a first `npx -y` downloads
	DefaultStopTimeout    = 5 * time.Second
	DefaultMaxMessageSize = 4 << 20
	DefaultSendTimeout    = 30 * time.Second
	DefaultBodyTimeout    = 10 * time.Second
	DefaultMaxBatchSize   = 100
	DefaultMaxInflight    = 64
	// A POST's body is held only until the process has taken it, so far
	// less is needed than mcp_sse's 256 MiB; a quarter of it (16 MiB) is
	// what one client may hold.
	DefaultMaxPendingBytes = 64 << 20
	// Enough for a burst of notifications, or one largest message, while
	// the client reads; a process that writes more waits for the client.
	DefaultMaxQueuedBytes = 4 << 20
	// Every process is a program of its own: no one client may hold more
	// than a tenth of the default max_processes. A client behind a shared
	// address (a NAT'd office) may need it raised.
	DefaultMaxProcessesPerClient = 10
)

// keepaliveInterval is the silence after which the standalone stream
// gets an SSE comment, which every client ignores and proxies see as
// traffic.
const keepaliveInterval = 25 * time.Second

// Handler serves Streamable HTTP in front of a stdio MCP server, one
// process per session. It is terminal: it never calls the next handler.
//
// Durations that can be turned off take a negative value for "off" in
// JSON; the Caddyfile spells it `off`.
type Handler struct {
	// The program to run, without a shell; a name without a slash is
	// looked up in Caddy's PATH. Required.
	Command string `json:"command"`
	// Its arguments, as given.
	Args []string `json:"args,omitempty"`
	// Variables set in the process's environment; values may hold
	// placeholders, replaced when the session starts.
	Env map[string]string `json:"env,omitempty"`
	// Request headers whose value, when the session starts, is set as an
	// environment variable: header name → variable name. For per-user
	// tokens.
	EnvFromHeader map[string]string `json:"env_from_header,omitempty"`
	// Which of Caddy's environment variables the process inherits: "on"
	// (the default), a short list (PATH, HOME, USER, LANG, LC_*, TZ,
	// TMPDIR, and on Windows what programs need there); "off", none;
	// "all", every one; or an array of names (a trailing * makes a
	// prefix) inherited besides the short list. true and false read as
	// "on" and "off".
	InheritEnv InheritEnv `json:"inherit_env,omitempty"`
	// The working directory of the process. Default: Caddy's.
	Dir string `json:"dir,omitempty"`
	// Most processes running at once, across every mcp_stdio handler; an
	// initialize beyond it gets 503 with Retry-After. Default: 100.
	MaxProcesses int `json:"max_processes,omitempty"`
	// Most processes one client (its IPv4 address or the /64 of its IPv6
	// address, as Caddy determines it, trusted proxies included) may hold;
	// an initialize beyond it gets 503 with Retry-After. Default: 10;
	// negative: no limit.
	MaxProcessesPerClient int `json:"max_processes_per_client,omitempty"`
	// A session whose client has sent nothing (no request naming it) for
	// this long, and has no request in flight, is ended; what the process
	// sends on its own does not keep it alive. Default: 10m; negative: off.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// Bound on the process answering initialize. Default: 60s.
	StartupTimeout caddy.Duration `json:"startup_timeout,omitempty"`
	// Each of the two waits when ending a process: after closing its
	// stdin, and after SIGTERM to its process group, before SIGKILL.
	// Default: 5s.
	StopTimeout caddy.Duration `json:"stop_timeout,omitempty"`
	// Largest message, in bytes: a larger POST body gets 413; a longer
	// line from the process ends its session. Default: 4 MiB.
	MaxMessageSize int64 `json:"max_message_size,omitempty"`
	// Bound on reading one POST's body; a client that sends it slower is
	// answered 408. Default: 10s; negative: off.
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`
	// Most bytes of POST bodies held at once, from their first byte until
	// the process has taken them, across every mcp_stdio handler (each
	// checks against its own limit); one client may hold a quarter of it,
	// or one max_message_size if that is more. A POST beyond it gets 503
	// with Retry-After. Default: 64 MiB; negative: no limit.
	MaxPendingBytes int64 `json:"max_pending_bytes,omitempty"`
	// Most messages one POSTed batch may hold; a larger batch gets 413.
	// Default: 100.
	MaxBatchSize int `json:"max_batch_size,omitempty"`
	// Most requests of one session awaiting the process's response at
	// once. A batch holding more gets 413; a POST that would put more in
	// flight gets 429 with Retry-After. Default: 64; negative: no limit.
	MaxInflight int `json:"max_inflight,omitempty"`
	// Most bytes of messages held for one client's stream (a POST's
	// response stream or the GET stream) while the client reads them, and
	// for a session's messages waiting for a stream to open. A stream
	// whose client lets it stay full for send_timeout is closed; a
	// message that finds the waiting messages full is dropped. A message
	// always fits an empty stream. Default: 4 MiB.
	MaxQueuedBytes int64 `json:"max_queued_bytes,omitempty"`
	// Bound on one write to a client's stream, on a full stream finding
	// room, and on one write to a process's stdin: a peer that reads
	// nothing for that long is cut. Default: 30s.
	SendTimeout caddy.Duration `json:"send_timeout,omitempty"`
	// The placeholder naming who a request comes from. A session belongs
	// to the identity that started it: a request with another gets 403.
	// Default: {http.auth.user.id}; "off" turns the binding off.
	Identity string `json:"identity,omitempty"`
	// Browser origins (scheme://host[:port], or "*") allowed cross-origin;
	// they get CORS headers. Requests without Origin, and from the site's
	// own origin (its host names, loopback names and IP literals, with the
	// request's scheme: see access.SameOrigin), are always allowed; any
	// other Origin gets 403.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// The placeholder choosing the process of a sessionless (2026-07-28)
	// request: one process per value, shared by every request with that
	// value, never by two values. Default: {http.auth.user.id}; a request
	// where it is empty (no authentication) runs on the one process of
	// the empty key, shared by every such request. Key by a header
	// ({http.request.header.X-User}) or a cookie
	// ({http.request.cookie.session}) instead, where those say who the
	// client is.
	ProcessKey string `json:"process_key,omitempty"`
	// How long a sessionless request that asked its client for input
	// waits for the retry; then the bridge answers the server's requests
	// with an error, and the requestState expires. Default: 10m.
	InputTimeout caddy.Duration `json:"input_timeout,omitempty"`
	// The key sealing requestState (AES-256-GCM): the base64 of 32
	// random bytes (openssl rand -base64 32); placeholders allowed, such
	// as {env.MCP_STATE_KEY}. Default: a random key, kept while Caddy
	// runs (reloads included).
	StateSecret string `json:"state_secret,omitempty"`

	reg        *registry
	stateRing  *cluster.Keyring
	slotPrefix string
	sites      *access.Sites
	logger     *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_stdio",
		New: func() caddy.Module { return new(Handler) },
	}
}

// longestStop is the longest stop_timeout of the handlers provisioned,
// which bounds how long stopping every process may take.
var longestStop atomic.Int64

// Provision applies defaults and joins the shared registry of sessions.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.sites = access.NewSites("mcp_stdio")
	h.applyDefaults()
	for {
		cur := longestStop.Load()
		if int64(h.StopTimeout) <= cur || longestStop.CompareAndSwap(cur, int64(h.StopTimeout)) {
			break
		}
	}

	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	reg, err := loadRegistry()
	if err != nil {
		return fmt.Errorf("provisioning the process registry: %w", err)
	}
	h.reg = reg
	h.slotPrefix = slotPrefix(h)
	h.stateRing = reg.ring
	if h.StateSecret != "" {
		secret := caddy.NewReplacer().ReplaceAll(h.StateSecret, "")
		if h.stateRing, err = cluster.NewKeyring(secret); err != nil {
			return fmt.Errorf("state_secret: %w", err)
		}
	}

	// End the processes when Caddy exits: http.Server.Shutdown waits for
	// running requests (a standalone stream never ends by itself) and
	// never cancels them.
	eventsApp, err := ctx.App("events")
	if err != nil {
		return fmt.Errorf("getting events app: %w", err)
	}
	if err := eventsApp.(*caddyevents.App).On("stopping", stopHandler{reg}); err != nil {
		return fmt.Errorf("subscribing to the stopping event: %w", err)
	}
	return nil
}

func (h *Handler) applyDefaults() {
	setDefault(&h.MaxProcesses, DefaultMaxProcesses)
	setDefault(&h.IdleTimeout, caddy.Duration(DefaultIdleTimeout))
	setDefault(&h.StartupTimeout, caddy.Duration(DefaultStartupTimeout))
	setDefault(&h.StopTimeout, caddy.Duration(DefaultStopTimeout))
	setDefault(&h.MaxMessageSize, DefaultMaxMessageSize)
	setDefault(&h.MaxProcessesPerClient, DefaultMaxProcessesPerClient)
	setDefault(&h.BodyTimeout, caddy.Duration(DefaultBodyTimeout))
	setDefault(&h.MaxPendingBytes, DefaultMaxPendingBytes)
	setDefault(&h.MaxBatchSize, DefaultMaxBatchSize)
	setDefault(&h.MaxInflight, DefaultMaxInflight)
	setDefault(&h.MaxQueuedBytes, DefaultMaxQueuedBytes)
	setDefault(&h.SendTimeout, caddy.Duration(DefaultSendTimeout))
	setDefault(&h.Identity, access.DefaultIdentity)
	setDefault(&h.ProcessKey, access.DefaultIdentity)
	setDefault(&h.InputTimeout, caddy.Duration(dispatch.DefaultInputTimeout))
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// Validate checks the provisioned configuration.
func (h *Handler) Validate() error {
	switch {
	case h.Command == "":
		return errors.New("command is required")
	case h.StartupTimeout < 0:
		return fmt.Errorf("startup_timeout must be positive: %s", time.Duration(h.StartupTimeout))
	case h.StopTimeout < 0:
		return fmt.Errorf("stop_timeout must be positive: %s", time.Duration(h.StopTimeout))
	case h.MaxMessageSize < 0:
		return fmt.Errorf("max_message_size must be positive: %d", h.MaxMessageSize)
	case h.MaxProcesses < 0:
		return fmt.Errorf("max_processes must be positive: %d", h.MaxProcesses)
	case h.MaxBatchSize < 0:
		return fmt.Errorf("max_batch_size must be positive: %d", h.MaxBatchSize)
	case h.MaxQueuedBytes < 0:
		return fmt.Errorf("max_queued_bytes must be positive: %d", h.MaxQueuedBytes)
	case h.SendTimeout < 0:
		return fmt.Errorf("send_timeout must be positive: %s", time.Duration(h.SendTimeout))
	case h.InputTimeout < 0:
		return fmt.Errorf("input_timeout must be positive: %s", time.Duration(h.InputTimeout))
	}
	for k := range h.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env: invalid variable name %q", k)
		}
	}
	for hdr, k := range h.EnvFromHeader {
		if hdr == "" || k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env_from_header: invalid header %q or variable %q", hdr, k)
		}
	}
	if err := h.InheritEnv.validate(); err != nil {
		return err
	}
	return access.ValidOrigins(h.AllowedOrigins)
}

// Cleanup leaves the shared registry; the last handler to leave stops
// every process.
func (h *Handler) Cleanup() error {
	_, err := pool.Delete(poolKey)
	return err
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if !h.admit(w, r) {
		return nil
	}
	version, perr := checkProtocolVersion(r)
	if perr != nil {
		postbody.CloseUnread(w, r)
		return writeProtocolError(w, http.StatusBadRequest, nil, perr)
	}
	if generation.ModernVersion(version) {
		if dispatch.InProcess(r) {
			// mcp_sse's probe for its sessions: each of them gets a
			// process of its own on the legacy path, where the sessionless
			// one would put every session of a principal on one process.
			postbody.CloseUnread(w, r)
			return writeProtocolError(w, http.StatusBadRequest, nil,
				generation.UnsupportedVersion(version, discoverVersions[1:]))
		}
		if r.Header.Get(dispatch.HeaderSessionID) != "" {
			postbody.CloseUnread(w, r)
			return writeError(w, http.StatusBadRequest, dispatch.CodeInvalidRequest,
				"a session speaks the revision it was initialized with, not "+version)
		}
		if r.Method != http.MethodPost {
			// No session: no stream to GET, nothing to DELETE.
			postbody.CloseUnread(w, r)
			w.Header().Set("Allow", "POST, OPTIONS")
			return writeError(w, http.StatusMethodNotAllowed, dispatch.CodeInvalidRequest,
				r.Method+" is not part of "+version+": requests are POSTs, notifications come on subscriptions/listen")
		}
		return h.serveSessionless(w, r)
	}
	switch r.Method {
	case http.MethodPost:
		return h.servePost(w, r)
	case http.MethodGet:
		return h.serveGet(w, r)
	case http.MethodDelete:
		return h.serveDelete(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE, OPTIONS")
		return writeError(w, http.StatusMethodNotAllowed, dispatch.CodeInvalidRequest, "method not allowed: "+r.Method)
	}
}

// corsAllowHeaders are the request headers a browser client may send.
const corsAllowHeaders = "Authorization, Content-Type, Accept, Last-Event-ID, Mcp-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, Mcp-Param-*"

// admit runs the Origin check (see access.CheckOrigin). It answers the
// request itself (a refusal, or a CORS preflight) and returns false when
// the request must go no further.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) bool {
	decision := access.CheckOrigin(r, h.AllowedOrigins, h.sites.Of(r, h))
	if decision == access.OriginForbidden {
		h.logger.Warn("refusing request: origin not allowed",
			zap.String("origin", r.Header.Get("Origin")), zap.String("remote_addr", r.RemoteAddr))
		postbody.CloseUnread(w, r)
		_ = writeError(w, http.StatusForbidden, dispatch.CodeInvalidRequest, "origin not allowed: "+r.Header.Get("Origin"))
		return false
	}
	if decision == access.OriginListed {
		access.SetCORS(w, r, h.AllowedOrigins)
		w.Header().Set("Access-Control-Expose-Headers", "Mcp-Session-Id")
	}
	if r.Method == http.MethodOptions {
		hdr := w.Header()
		hdr.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		hdr.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		hdr.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	return true
}

// lookup finds the session a request names, answering it with 400, 404
// or 403 itself when it cannot go on.
func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) (*mcpSession, bool) {
	refuse := func(status, code int, msg string) (*mcpSession, bool) {
		postbody.CloseUnread(w, r)
		_ = writeError(w, status, code, msg)
		return nil, false
	}
	id := r.Header.Get(dispatch.HeaderSessionID)
	switch {
	case id == "":
		return refuse(http.StatusBadRequest, dispatch.CodeInvalidRequest, "missing Mcp-Session-Id header: send initialize first")
	case !session.ValidID(id):
		return refuse(http.StatusBadRequest, dispatch.CodeInvalidRequest, "malformed Mcp-Session-Id")
	}
	s, ok := h.reg.get(id)
	if !ok {
		return refuse(http.StatusNotFound, dispatch.CodeSessionNotFound, "session not found: send initialize to start a new one")
	}
	if who := access.Identity(r, h.Identity); who != s.identity {
		h.logger.Warn("refusing request: identity does not own the session",
			zap.String("session", session.ShortID(s.id)), zap.String("identity", who),
			zap.String("owner", s.identity), zap.String("remote_addr", r.RemoteAddr))
		return refuse(http.StatusForbidden, dispatch.CodeInvalidRequest, "this session belongs to another identity")
	}
	s.touch()
	return s, true
}

// servePost takes one POSTed message or batch. Everything the headers
// tell (the Origin, the protocol version, the session and who owns it) is
// checked before the body is read, so that a POST that is refused holds
// nothing; the body is then read within body_timeout and
// max_pending_bytes, and held until the process has taken it.
func (h *Handler) servePost(w http.ResponseWriter, r *http.Request) error {
	var s *mcpSession
	if r.Header.Get(dispatch.HeaderSessionID) != "" {
		var ok bool
		if s, ok = h.lookup(w, r); !ok {
			return nil
		}
	}
	parsed, hold, err := h.readMessages(w, r)
	if hold == nil {
		return err
	}
	// The body's bytes are held until the process has taken its
	// messages; what outlives that (ids of requests in flight) is copied.
	defer hold.Release()
	msgs := make([]inMessage, len(parsed))
	requests := 0
	for i, m := range parsed {
		msgs[i] = inMessage{raw: m.Raw, id: m.ID, req: m.IsRequest()}
		if msgs[i].req {
			requests++
			msgs[i].token = progressToken(m.Raw)
		}
	}
	sseOK := acceptsSSE(r)
	if requests > 1 && !sseOK {
		return writeError(w, http.StatusNotAcceptable, dispatch.CodeInvalidRequest,
			"a batch of requests is answered as text/event-stream, which the Accept header does not allow")
	}

	isInit := len(parsed) == 1 && parsed[0].Method == "initialize" && msgs[0].req
	if s == nil {
		if !isInit {
			return writeError(w, http.StatusBadRequest, dispatch.CodeInvalidRequest,
				"missing Mcp-Session-Id header: only initialize may start a session")
		}
		var done bool
		s, done = h.startSession(w, r, msgs[0])
		if done {
			return nil
		}
	}

	if requests == 0 {
		// Notifications and responses to the server's requests: to
		// stdin, and 202.
		for _, m := range msgs {
			// A cancelled request is forgotten before the server hears
			// of it: the server may answer the cancellation at once (the
			// Go SDK's answers "context canceled"), and that answer is
			// for no one.
			if id := cancelledID(m.raw); id != nil {
				s.cancel(id)
			}
			if err := s.send(m.raw); err != nil {
				h.stdinFailed(s, err)
				return writeError(w, http.StatusNotFound, dispatch.CodeSessionNotFound,
					"session ended: the MCP server process does not take messages ("+err.Error()+"); send initialize to start a new one")
			}
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}

	st := newStream(sseOK)
	defer close(st.done)
	backlog, dup, err := s.register(st, msgs, h.MaxInflight)
	switch {
	case errors.Is(err, errEnded):
		return writeError(w, http.StatusNotFound, dispatch.CodeSessionNotFound, "session not found: send initialize to start a new one")
	case errors.Is(err, errBusy):
		ref := postbody.Busy(h.MaxInflight)
		h.refused(ref)
		return ref.Write(w)
	case err != nil:
		return writeError(w, http.StatusConflict, dispatch.CodeInvalidRequest,
			fmt.Sprintf("request id %s is already in flight in this session", dup))
	}
	for _, m := range msgs {
		if err := s.send(m.raw); err != nil {
			// The requests registered get the session's end as their
			// answer.
			h.stdinFailed(s, err)
			break
		}
	}
	hold.Release()
	var startup <-chan time.Time
	if isInit {
		t := time.NewTimer(time.Duration(h.StartupTimeout))
		defer t.Stop()
		startup = t.C
	}
	return h.writeStream(w, r, s, st, backlog, requests == 1, startup)
}

// stdinFailed handles a message the process did not take. A process that
// stopped reading for send_timeout is stuck: its session ends. Any other
// failure means the process is exiting or stopped, and its session ends
// with the exit, which the watcher reports.
func (h *Handler) stdinFailed(s *mcpSession, err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		h.logger.Debug("the process did not take a message", zap.String("session", session.ShortID(s.id)), zap.Error(err))
		return
	}
	h.logger.Error("ending session: the process stopped reading its stdin",
		zap.String("session", session.ShortID(s.id)), zap.Int("pid", s.proc.PID()), zap.Duration("send_timeout", s.sendTimeout), zap.Error(err))
	s.end(ReasonStdin, nil)
}

// refused counts and logs a POST refused for a limit.
func (h *Handler) refused(ref *postbody.Refusal) {
	switch ref.Reason {
	case postbody.ReasonPending, postbody.ReasonInflight, postbody.ReasonBatch, postbody.ReasonTimeout:
		metrics.refused.WithLabelValues(ref.Reason).Inc()
		h.logger.Warn("refusing message", zap.String("limit", ref.Reason), zap.String("error", ref.Msg))
	}
}

// startSession starts a process for an initialize request. done is true
// when it answered the request itself (a refusal or a failure).
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, init inMessage) (*mcpSession, bool) {
	client := access.ClientKey(r)
	if ok, which := h.reg.admit(client, h.MaxProcesses, h.MaxProcessesPerClient); !ok {
		limit := h.MaxProcesses
		if which == "max_processes_per_client" {
			limit = h.MaxProcessesPerClient
		}
		h.logger.Warn("refusing session: process limit reached",
			zap.String("limit", which), zap.Int("value", limit), zap.String("client_ip", access.ClientIP(r)), zap.String("client", client))
		w.Header().Set("Retry-After", "5")
		_ = writeError(w, http.StatusServiceUnavailable, dispatch.CodeInternalError,
			fmt.Sprintf("too many MCP server processes (%s %d); retry later", which, limit))
		return nil, true
	}

	s := h.newSession(r)
	s.client = client
	if err := h.spawn(r, s); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(dispatch.ErrorResponse(init.id, dispatch.CodeInternalError,
			fmt.Sprintf("cannot start MCP server command %q: %v", h.Command, err), nil))
		return nil, true
	}
	w.Header().Set(dispatch.HeaderSessionID, s.id)
	return s, false
}

// newSession is a session for a process not started yet, owned by the
// request's identity and counted under its client.
func (h *Handler) newSession(r *http.Request) *mcpSession {
	s := &mcpSession{
		id:          session.NewID(),
		identity:    access.Identity(r, h.Identity),
		client:      access.ClientKey(r),
		command:     strings.Join(append([]string{h.Command}, h.Args...), " "),
		logger:      h.logger,
		reg:         h.reg,
		sendTimeout: time.Duration(h.SendTimeout),
		maxQueued:   h.MaxQueuedBytes,
		started:     time.Now(),
		calls:       make(map[string]*call),
		tokens:      make(map[string]*call),
		endedCh:     make(chan struct{}),
		gone:        make(chan struct{}),
	}
	s.touch()
	return s
}

// spawn starts the process of a session admitted by the registry (its
// room is given back if it does not start), and watches it.
func (h *Handler) spawn(r *http.Request, s *mcpSession) error {
	proc, err := stdio.Start(stdio.Config{
		Command:        h.Command,
		Args:           h.Args,
		Env:            h.environ(r),
		Dir:            h.Dir,
		MaxMessageSize: int(h.MaxMessageSize),
		StopTimeout:    time.Duration(h.StopTimeout),
		OnMessage:      s.route,
		OnSkipped: func(line []byte, suppressed int) {
			fields := []zap.Field{zap.String("session", session.ShortID(s.id)), zap.ByteString("line", line)}
			if suppressed > 0 {
				fields = append(fields, zap.Int("lines_suppressed", suppressed))
			}
			h.logger.Warn("skipping a stdout line that is not a JSON-RPC message", fields...)
		},
		OnStderr: func(line string, suppressed int) {
			fields := []zap.Field{zap.String("session", session.ShortID(s.id)), zap.String("line", line)}
			if suppressed > 0 {
				fields = append(fields, zap.Int("lines_suppressed", suppressed))
			}
			h.logger.Info("stderr", fields...)
		},
	})
	if err != nil {
		h.reg.unreserve(s.client)
		metrics.exited.WithLabelValues("start_failed").Inc()
		h.logger.Error("starting the MCP server process failed", zap.String("command", s.command), zap.Error(err))
		return err
	}
	s.proc = proc
	h.reg.add(s)
	metrics.started.Inc()
	fields := []zap.Field{zap.String("session", session.ShortID(s.id)), zap.Int("pid", proc.PID()),
		zap.String("command", s.command), zap.String("identity", s.identity), zap.String("remote_addr", r.RemoteAddr)}
	if s.keyed != nil {
		fields = append(fields, zap.String("process_key_fingerprint", s.keyed.fingerprint))
	}
	h.logger.Info("process started", fields...)
	go s.watch(time.Duration(h.IdleTimeout))
	return nil
}

// environ is the environment of a new process.
func (h *Handler) environ(r *http.Request) []string {
	env := append(h.InheritEnv.environ(os.Environ()), h.requestEnv(r)...)
	if env == nil {
		env = []string{} // not nil: nil would mean Caddy's own
	}
	return env
}

// requestEnv is the part of a new process's environment the request
// gives: env (its placeholders replaced) and env_from_header, in a stable
// order.
func (h *Handler) requestEnv(r *http.Request) []string {
	var env []string
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	for _, k := range slices.Sorted(maps.Keys(h.Env)) {
		v := h.Env[k]
		if repl != nil {
			v = repl.ReplaceAll(v, "")
		}
		env = append(env, k+"="+v)
	}
	for _, hdr := range slices.Sorted(maps.Keys(h.EnvFromHeader)) {
		if v := r.Header.Get(hdr); v != "" {
			env = append(env, h.EnvFromHeader[hdr]+"="+v)
		}
	}
	return env
}

// writeStream answers a POST carrying requests: with the response alone
// as JSON when it comes first and is the only one, otherwise as an event
// stream carrying, in order, the messages routed to it, until every
// request is answered. single is true for one request. startup, if set,
// fires when initialize has waited too long.
func (h *Handler) writeStream(w http.ResponseWriter, r *http.Request, s *mcpSession, st *stream, backlog [][]byte, single bool, startup <-chan time.Time) error {
	ew := newEventWriter(w, time.Duration(h.SendTimeout))
	write := ew.write
	deliver := func(it item) (bool, error) {
		if it.msg == nil {
			// Cancelled: an event stream that ends with no response.
			ew.start()
			return true, nil
		}
		if !ew.streaming && single && it.resp {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, err := w.Write(it.msg)
			return true, err
		}
		if err := write(it.msg); err != nil {
			return true, err
		}
		return it.last, nil
	}
	fail := func(err error) error {
		s.unregister(st)
		switch {
		case h.slowConsumer(s, err):
		case !errors.Is(err, context.Canceled):
			h.logger.Debug("client stream ended", zap.String("session", session.ShortID(s.id)), zap.Error(err))
		}
		return nil
	}
	for _, m := range backlog {
		if err := write(m); err != nil {
			return fail(err)
		}
	}
	for {
		select {
		case it := <-st.out:
			end, err := deliver(it)
			st.written(len(it.msg))
			if err != nil {
				return fail(err)
			} else if end {
				return nil
			}
		case <-st.cut:
			return fail(errSlow)
		case <-s.endedCh:
			// What was routed before the end goes out first.
			for {
				select {
				case it := <-st.out:
					if end, err := deliver(it); err != nil {
						return fail(err)
					} else if end {
						return nil
					}
					continue
				default:
				}
				break
			}
			calls := s.unanswered(st)
			if !ew.streaming && len(calls) > 0 && h.isInitFailure(s, w) {
				// A session that never started names no session.
				w.Header().Del(dispatch.HeaderSessionID)
			}
			for _, c := range calls {
				msg := s.endError(c.id, h)
				if !ew.streaming && single {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusOK)
					_, err := w.Write(msg)
					return err
				}
				if err := write(msg); err != nil {
					return fail(err)
				}
			}
			return nil
		case <-startup:
			h.logger.Error("ending session: the process did not answer initialize in time",
				zap.String("session", session.ShortID(s.id)), zap.String("command", s.command),
				zap.Duration("startup_timeout", time.Duration(h.StartupTimeout)))
			s.end(ReasonStartup, nil)
			startup = nil
		case <-r.Context().Done():
			return fail(r.Context().Err())
		}
	}
}

// slowConsumer logs and counts a stream closed because its client let
// it stay full (in bytes, max_queued_bytes) or left a write unread for
// send_timeout, and reports whether that is why err ended it.
func (h *Handler) slowConsumer(s *mcpSession, err error) bool {
	if !errors.Is(err, errSlow) && !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	h.logger.Warn("closing a slow consumer: its client read nothing for send_timeout",
		zap.String("session", session.ShortID(s.id)), zap.Duration("send_timeout", time.Duration(h.SendTimeout)),
		zap.Int64("max_queued_bytes", h.MaxQueuedBytes), zap.Error(err))
	metrics.slow.Inc()
	return true
}

// isInitFailure reports whether the response being written is the
// initialize that started the session.
func (h *Handler) isInitFailure(s *mcpSession, w http.ResponseWriter) bool {
	return w.Header().Get(dispatch.HeaderSessionID) == s.id
}

// endError is the JSON-RPC error a request in flight gets when its session
// ends before the process answered it.
func (s *mcpSession) endError(id []byte, h *Handler) []byte {
	reason, exit := s.endInfo()
	data := map[string]any{"reason": reason}
	var msg string
	switch {
	case exit != nil:
		msg = fmt.Sprintf("MCP server process %q ended: %s", s.command, exit.String())
		if exit.Signal != "" {
			data["signal"] = exit.Signal
		} else {
			data["exit_code"] = exit.Code
		}
		if exit.LastStderr != "" {
			data["last_stderr"] = exit.LastStderr
		}
	case reason == ReasonStartup:
		msg = fmt.Sprintf("MCP server command %q did not answer initialize within %s", s.command, time.Duration(h.StartupTimeout))
		if last := s.proc.LastStderr(); last != "" {
			msg += "; last stderr line: " + last
			data["last_stderr"] = last
		}
	default:
		msg = "session ended (" + reason + ") before the MCP server answered"
	}
	return dispatch.ErrorResponse(id, dispatch.CodeInternalError, msg, data)
}

// serveGet opens the session's standalone stream: what the process sends
// outside any request goes there.
func (h *Handler) serveGet(w http.ResponseWriter, r *http.Request) error {
	if !acceptsSSE(r) {
		return writeError(w, http.StatusNotAcceptable, dispatch.CodeInvalidRequest, "GET needs Accept: text/event-stream")
	}
	s, ok := h.lookup(w, r)
	if !ok {
		return nil
	}
	st := newStream(true)
	defer close(st.done)
	backlog, ok := s.openStandalone(st)
	if !ok {
		return writeError(w, http.StatusConflict, dispatch.CodeInvalidRequest, "this session's standalone stream is already open")
	}
	defer s.closeStandalone(st)

	ew := newEventWriter(w, time.Duration(h.SendTimeout))
	ew.start()
	var buf []byte
	write := func(frame []byte) error { return h.streamFrame(s, ew, frame) }
	if err := ew.flush(); err != nil {
		return nil
	}
	for _, m := range backlog {
		if write(sse.AppendFrame(buf[:0], sse.EventMessage, m, 0)) != nil {
			return nil
		}
	}
	keepalive := time.NewTimer(keepaliveInterval)
	defer keepalive.Stop()
	for {
		select {
		case it := <-st.out:
			buf = sse.AppendFrame(buf[:0], sse.EventMessage, it.msg, 0)
			err := write(buf)
			st.written(len(it.msg))
			if err != nil {
				return nil
			}
			keepalive.Reset(keepaliveInterval)
		case <-st.cut:
			h.slowConsumer(s, errSlow)
			return nil
		case <-keepalive.C:
			if write([]byte(": keepalive\n\n")) != nil {
				return nil
			}
			keepalive.Reset(keepaliveInterval)
		case <-s.endedCh:
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

// serveDelete ends the session and its process.
func (h *Handler) serveDelete(w http.ResponseWriter, r *http.Request) error {
	s, ok := h.lookup(w, r)
	if !ok {
		return nil
	}
	h.logger.Info("session deleted by the client", zap.String("session", session.ShortID(s.id)))
	s.end(ReasonDeleted, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// acceptsSSE reports whether the client takes an event stream. A request
// without Accept takes anything.
func acceptsSSE(r *http.Request) bool {
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return true
	}
	for _, v := range accept {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case "text/event-stream", "text/*", "*/*":
				return true
			}
		}
	}
	return false
}

// writeError answers with a JSON-RPC error body; the transport wants JSON
// bodies on these errors, not Caddy's error pages.
func writeError(w http.ResponseWriter, status, code int, msg string) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(dispatch.ErrorResponse(nil, code, msg, nil))
	return err
}

// stopHandler ends every process when Caddy exits, and waits until they
// are gone. The "stopping" event also fires when a reload replaces a
// config, where processes must live on, so it acts only on exit.
type stopHandler struct{ reg *registry }

func (s stopHandler) Handle(context.Context, caddy.Event) error {
	if caddy.Exiting() {
		s.reg.endAll(ReasonShutdown, shutdownWait())
	}
	return nil
}

// shutdownWait bounds how long ending every process may hold Caddy: the
// two waits of the longest stop_timeout, and a margin.
func shutdownWait() time.Duration {
	return 2*time.Duration(max(longestStop.Load(), int64(DefaultStopTimeout))) + 5*time.Second
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyevents.Handler         = stopHandler{}
)

// readMessages reads a POST's body and parses its messages within
// max_message_size, body_timeout, max_pending_bytes, max_batch_size and
// max_inflight. A nil hold means the POST was refused and answered (err
// is that write's); otherwise the caller releases hold once the process
// has taken the messages.
func (h *Handler) readMessages(w http.ResponseWriter, r *http.Request) (parsed []dispatch.Message, hold *postbody.Hold, err error) {
	body, hold, ref := postbody.Read(w, r, h.reg.bodies, postbody.Limits{
		MaxMessageSize: h.MaxMessageSize,
		Timeout:        time.Duration(max(h.BodyTimeout, 0)),
		MaxPending:     h.MaxPendingBytes,
	}, access.ClientKey(r))
	if ref != nil {
		h.refused(ref)
		return nil, nil, ref.Write(w)
	}
	parsed, _, ref = postbody.ParseBatch(nil, body, h.MaxBatchSize, h.MaxInflight)
	if ref != nil {
		hold.Release()
		h.refused(ref)
		return nil, nil, ref.Write(w)
	}
	return parsed, hold, nil
}
