// Package mcpsse is a Caddy HTTP handler that serves the Model Context
// Protocol's HTTP+SSE transport (revision 2024-11-05) and bridges every
// session to the MCP server behind it, which is reached through the next
// handler in the route (typically reverse_proxy to a Streamable HTTP
// server).
package mcpsse

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/mcpsse/caddy-mcp-sse/dispatch"
	"github.com/mcpsse/caddy-mcp-sse/internal/access"
	"github.com/mcpsse/caddy-mcp-sse/session"
	"github.com/mcpsse/caddy-mcp-sse/sse"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults, applied in Provision. They mirror mcpgateway's where it has one.
const (
	DefaultSSEPath          = "/sse"
	DefaultMessagePath      = "/message"
	DefaultKeepalive        = 30 * time.Second
	DefaultRetry            = 5 * time.Second
	DefaultSendTimeout      = 30 * time.Second
	DefaultRapidYieldMax    = 50
	DefaultRapidYieldWindow = time.Second
	DefaultCleanupTimeout   = 5 * time.Second
	DefaultMaxMessageSize   = 4 << 20
	DefaultMaxSessions      = 10000
	DefaultQueueSize        = 1024
	DefaultUpstreamTimeout  = 120 * time.Second
	DefaultMaxBatchSize     = 100
	DefaultMaxInflight      = 64
	DefaultMaxPendingBytes  = 256 << 20
	DefaultBodyTimeout      = 10 * time.Second
	DefaultResumeWindow     = 30 * time.Second
	DefaultReplayBuffer     = 256
	// A client IP is often a whole NAT'd office or a company's egress
	// proxy: 500 sessions lets a few hundred people behind one address
	// work, while no one address can take every one of the default 10,000.
	DefaultMaxSessionsPerClient = 500
)

// Handler serves MCP's HTTP+SSE transport. A GET on SSEPath opens a
// session and streams it; a POST on MessagePath?session_id=… hands the
// posted JSON-RPC message to the next handler as a Streamable HTTP request
// and relays its reply onto the session's stream. Every other request is
// passed to the next handler unchanged, so Streamable HTTP clients can
// share the route.
//
// Durations and limits that can be turned off take a negative value for
// "off" in JSON; the Caddyfile spells it `off` (or 0 where noted).
type Handler struct {
	// Path whose GET opens a stream. Default: /sse.
	SSEPath string `json:"sse_path,omitempty"`
	// Path clients POST messages to. Default: /message.
	MessagePath string `json:"message_path,omitempty"`
	// Prefix of the endpoint URL sent to clients, e.g.
	// https://mcp.example.com. Default: empty, which sends a URL relative
	// to the SSE request's own path, so it survives path prefixes and
	// TLS-terminating proxies.
	BaseURL string `json:"base_url,omitempty"`
	// Silence after which a keepalive frame is sent; one is also sent right
	// after the endpoint. Default: 30s; negative: no keepalives.
	Keepalive caddy.Duration `json:"keepalive,omitempty"`
	// What a keepalive is: "comment" (an SSE comment line, which every
	// client's parser skips) or "event" (mcpgateway's event: keepalive
	// with data {}, which kills the Go SDK's client). Default: comment.
	KeepaliveFrame string `json:"keepalive_frame,omitempty"`
	// The retry field sent to clients (on the first frame, which is where
	// a reconnecting client reads it). Default: 5s; negative: none.
	Retry caddy.Duration `json:"retry,omitempty"`
	// Deadline on each write and flush of the stream; a client that stops
	// reading is cut and its session closed. Default: 30s; negative: off.
	SendTimeout caddy.Duration `json:"send_timeout,omitempty"`
	// The spin guard: a stream that writes more than RapidYieldMax frames
	// carrying no message within RapidYieldWindow is closed. Default: 50
	// within 1s; negative max: off.
	RapidYieldMax    int            `json:"rapid_yield_max,omitempty"`
	RapidYieldWindow caddy.Duration `json:"rapid_yield_window,omitempty"`
	// Bound on the teardown work after a stream ends (the upstream session's
	// DELETE). Default: 5s.
	CleanupTimeout caddy.Duration `json:"cleanup_timeout,omitempty"`
	// Largest message accepted, in bytes: a larger POST body gets 413, a
	// larger message in the upstream's reply is an upstream error.
	// Default: 4 MiB.
	MaxMessageSize int64 `json:"max_message_size,omitempty"`
	// Most sessions this handler holds open at once; further GETs get 503
	// with Retry-After. Each handler counts its own sessions. Default:
	// 10000; negative: no limit.
	MaxSessions int `json:"max_sessions,omitempty"`
	// Messages a session's outbound queue holds. While it is full, relays
	// wait for room (backpressure on the upstream), up to send_timeout; a
	// queue that stays full that long closes the session as a slow
	// consumer. Default: 1024.
	QueueSize int `json:"queue_size,omitempty"`
	// Bound on one dispatched request, its reply included. Default: 120s.
	UpstreamTimeout caddy.Duration `json:"upstream_timeout,omitempty"`
	// Client request headers passed to the upstream with each message,
	// besides Authorization, which always is.
	ForwardHeaders []string `json:"forward_headers,omitempty"`
	// Browser origins (scheme://host[:port], or "*") allowed to use the
	// endpoints cross-origin; they get CORS headers, preflight included.
	// Requests without Origin, and from the request's own host, are always
	// allowed; any other Origin gets 403.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// The placeholder naming who a request comes from. A session belongs
	// to the identity that opened it: a POST with another identity, or
	// none, gets 403 and reaches no upstream. Default:
	// {http.auth.user.id}, set by Caddy's authentication handlers; "off"
	// turns the binding off.
	Identity string `json:"identity,omitempty"`
	// Most sessions one client (its IPv4 address or the /64 of its IPv6
	// address, as Caddy determines it, trusted proxies included) may hold
	// open on this handler; further
	// GETs get 503 with Retry-After. Default: 500; negative: no limit.
	MaxSessionsPerClient int `json:"max_sessions_per_client,omitempty"`
	// Most messages one POSTed batch may hold; a larger batch gets 413.
	// Default: 100.
	MaxBatchSize int `json:"max_batch_size,omitempty"`
	// Most dispatches of one session in flight at once: requests and
	// notifications posted and not yet answered by the upstream. A POST
	// that would exceed it gets 429 with Retry-After. Responses to the
	// server's own requests (sampling, elicitation) count apart, against
	// a limit of the same size, so that a tool waiting on one can finish
	// however many calls are in flight. Default: 64; negative: no limit.
	MaxInflight int `json:"max_inflight,omitempty"`
	// Most bytes of POST bodies held at once, from their read until their
	// dispatches end, counted across every mcp_sse handler of the process
	// (each checks against its own limit). A POST beyond it gets 503 with
	// Retry-After. Default: 256 MiB; negative: no limit.
	MaxPendingBytes int64 `json:"max_pending_bytes,omitempty"`
	// Bound on reading one POST's body; a client that sends it slower is
	// answered 408. Default: 10s; negative: off.
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`
	// How long a session outlives a stream whose client went away,
	// detached, for the client to re-attach (Last-Event-ID, the resume
	// cookie, or its identity). Default: 30s; negative: off, a session
	// ends with its stream.
	ResumeWindow caddy.Duration `json:"resume_window,omitempty"`
	// Recent message frames a session keeps (up to 1 MiB) to replay to a
	// client re-attaching with Last-Event-ID. Default: 256; negative:
	// none.
	ReplayBuffer int `json:"replay_buffer,omitempty"`
	// Whether a new stream's response sets the resume cookie, and a GET
	// carrying it re-attaches: __Host-mcp_sse_resume on https (HttpOnly,
	// SameSite=Strict, Secure, Path /), mcp_sse_resume on http (HttpOnly,
	// SameSite=Strict, Path the SSE path). Default: true.
	ResumeCookie *bool `json:"resume_cookie,omitempty"`
	// Whether each initialized session holds the upstream's standalone
	// event stream open (a GET with its Mcp-Session-Id), so that what the
	// server sends outside any request (list_changed notifications,
	// resource updates, requests of its own) reaches the client. It costs
	// one upstream connection per initialized session. Default: true.
	UpstreamListen *bool `json:"upstream_listen,omitempty"`
	// Which generation of MCP the upstream speaks: "auto" probes it with
	// server/discover when a client initializes (and remembers the
	// verdict per route for a while), "2026-07-28" bridges every session
	// to a sessionless upstream, "legacy" never does. Default: auto.
	UpstreamProtocol string `json:"upstream_protocol,omitempty"`
	// On the sessionless path, how long the bridge waits for a client's
	// answers to one round of a server's input requests (elicitation,
	// sampling, roots). Default: 10m (a human may be answering).
	InputTimeout caddy.Duration `json:"input_timeout,omitempty"`
	// On the sessionless path, the most rounds of input requests one
	// request may take. Default: 10.
	MaxInputRounds int `json:"max_input_rounds,omitempty"`

	store      pooledStore
	sites      *access.Sites
	dispatcher *dispatch.Dispatcher
	streamOpts sse.Options
	endpoint   string // the endpoint URL up to "?session_id="
	logger     *zap.Logger
	// cluster is the process's cluster membership, nil without the
	// global cluster option.
	cluster *clusterMember
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_sse",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies defaults and joins the shared session store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.applyDefaults()

	h.streamOpts = sse.Options{
		Retry:            positive(h.Retry),
		Keepalive:        positive(h.Keepalive),
		KeepaliveEvent:   h.KeepaliveFrame == KeepaliveEvent,
		SendTimeout:      positive(h.SendTimeout),
		RapidYieldMax:    max(h.RapidYieldMax, 0),
		RapidYieldWindow: time.Duration(h.RapidYieldWindow),
	}
	h.dispatcher = &dispatch.Dispatcher{
		Timeout:        time.Duration(h.UpstreamTimeout),
		MaxMessageSize: int(h.MaxMessageSize),
		ForwardHeaders: h.ForwardHeaders,
		QueueWait:      queueWait(h.SendTimeout),
		Listen:         h.UpstreamListen == nil || *h.UpstreamListen,

		UpstreamProtocol: h.UpstreamProtocol,
		InputTimeout:     time.Duration(h.InputTimeout),
		MaxInputRounds:   h.MaxInputRounds,
		InputRound:       countInputRound,
		ListenStreams:    countListenStream,
		StateChanged:     h.clusterStateChanged,
		Observe:          observeDispatch,
		UpstreamError:    countUpstreamError,
		Logger:           h.logger,
	}
	if h.BaseURL != "" {
		h.endpoint = strings.TrimSuffix(h.BaseURL, "/") + h.MessagePath + "?session_id="
	} else {
		h.endpoint = relativeRef(h.SSEPath, h.MessagePath) + "?session_id="
	}

	registerConnContext(ctx)
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}

	if app, err := ctx.AppIfConfigured("mcp_sse"); err == nil {
		if a, ok := app.(*App); ok && a.member != nil {
			if !h.resumeOn() {
				return fmt.Errorf("cluster mode needs sessions that outlive their streams: resume_window cannot be off")
			}
			h.cluster = a.member
		}
	}
	paths := fmt.Sprintf("sse_path %q message_path %q\n", h.SSEPath, h.MessagePath)
	if h.cluster != nil {
		h.sites = access.NewClusterSites(paths)
	} else {
		h.sites = access.NewSites(paths)
	}

	store, err := loadStore()
	if err != nil {
		return fmt.Errorf("provisioning session store: %w", err)
	}
	h.store = store

	// End streams when the process exits: http.Server.Shutdown waits for
	// running requests and never cancels their contexts, so open streams
	// would keep `caddy stop` waiting forever.
	eventsApp, err := ctx.App("events")
	if err != nil {
		return fmt.Errorf("getting events app: %w", err)
	}
	if err := eventsApp.(*caddyevents.App).On("stopping", stopHandler{store}); err != nil {
		return fmt.Errorf("subscribing to the stopping event: %w", err)
	}
	return nil
}

func (h *Handler) applyDefaults() {
	setDefault(&h.SSEPath, DefaultSSEPath)
	setDefault(&h.MessagePath, DefaultMessagePath)
	setDefault(&h.Keepalive, caddy.Duration(DefaultKeepalive))
	setDefault(&h.Retry, caddy.Duration(DefaultRetry))
	setDefault(&h.SendTimeout, caddy.Duration(DefaultSendTimeout))
	setDefault(&h.RapidYieldMax, DefaultRapidYieldMax)
	setDefault(&h.RapidYieldWindow, caddy.Duration(DefaultRapidYieldWindow))
	setDefault(&h.CleanupTimeout, caddy.Duration(DefaultCleanupTimeout))
	setDefault(&h.MaxMessageSize, DefaultMaxMessageSize)
	setDefault(&h.MaxSessions, DefaultMaxSessions)
	setDefault(&h.QueueSize, DefaultQueueSize)
	setDefault(&h.UpstreamTimeout, caddy.Duration(DefaultUpstreamTimeout))
	setDefault(&h.Identity, DefaultIdentity)
	setDefault(&h.MaxBatchSize, DefaultMaxBatchSize)
	setDefault(&h.MaxInflight, DefaultMaxInflight)
	setDefault(&h.MaxPendingBytes, DefaultMaxPendingBytes)
	setDefault(&h.BodyTimeout, caddy.Duration(DefaultBodyTimeout))
	setDefault(&h.MaxSessionsPerClient, DefaultMaxSessionsPerClient)
	setDefault(&h.KeepaliveFrame, KeepaliveComment)
	setDefault(&h.ResumeWindow, caddy.Duration(DefaultResumeWindow))
	setDefault(&h.ReplayBuffer, DefaultReplayBuffer)
	setDefault(&h.UpstreamProtocol, dispatch.UpstreamAuto)
	setDefault(&h.InputTimeout, caddy.Duration(dispatch.DefaultInputTimeout))
	setDefault(&h.MaxInputRounds, dispatch.DefaultMaxInputRounds)
}

// validUpstreamProtocol reports whether p is a value of upstream_protocol.
func validUpstreamProtocol(p string) bool {
	switch p {
	case dispatch.UpstreamAuto, dispatch.UpstreamModern, dispatch.UpstreamLegacy:
		return true
	}
	return false
}

// Kinds of keepalive frame (keepalive_frame).
const (
	KeepaliveComment = "comment"
	KeepaliveEvent   = "event"
)

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// queueWait is how long a relay waits for room in a full session queue. A
// client that reads keeps making room; one that stops is cut by
// send_timeout, so waiting that long loses nothing. With send_timeout off,
// the default bounds the wait instead.
func queueWait(sendTimeout caddy.Duration) time.Duration {
	if sendTimeout > 0 {
		return time.Duration(sendTimeout)
	}
	return DefaultSendTimeout
}

func positive(d caddy.Duration) time.Duration {
	return time.Duration(max(d, 0))
}

// Validate checks the provisioned configuration.
func (h *Handler) Validate() error {
	for name, p := range map[string]string{"sse_path": h.SSEPath, "message_path": h.MessagePath} {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("%s must start with '/': %q", name, p)
		}
	}
	if h.BaseURL != "" {
		u, err := url.Parse(h.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("base_url must be an absolute http or https URL without query or fragment: %q", h.BaseURL)
		}
	}
	if h.RapidYieldMax > 0 && h.RapidYieldWindow <= 0 {
		return fmt.Errorf("rapid_yield_window must be positive: %s", time.Duration(h.RapidYieldWindow))
	}
	switch {
	case h.CleanupTimeout < 0:
		return fmt.Errorf("cleanup_timeout must be positive: %s", time.Duration(h.CleanupTimeout))
	case h.UpstreamTimeout < 0:
		return fmt.Errorf("upstream_timeout must be positive: %s", time.Duration(h.UpstreamTimeout))
	case h.MaxMessageSize < 0:
		return fmt.Errorf("max_message_size must be positive: %d", h.MaxMessageSize)
	case h.QueueSize < 0:
		return fmt.Errorf("queue_size must be positive: %d", h.QueueSize)
	case h.KeepaliveFrame != KeepaliveComment && h.KeepaliveFrame != KeepaliveEvent:
		return fmt.Errorf("keepalive_frame must be %q or %q: %q", KeepaliveComment, KeepaliveEvent, h.KeepaliveFrame)
	case h.MaxBatchSize < 0:
		return fmt.Errorf("max_batch_size must be positive: %d", h.MaxBatchSize)
	case !validUpstreamProtocol(h.UpstreamProtocol):
		return fmt.Errorf("upstream_protocol must be %q, %q or %q: %q", dispatch.UpstreamAuto, dispatch.UpstreamModern, dispatch.UpstreamLegacy, h.UpstreamProtocol)
	case h.InputTimeout < 0:
		return fmt.Errorf("input_timeout must be positive: %s", time.Duration(h.InputTimeout))
	case h.MaxInputRounds < 0:
		return fmt.Errorf("max_input_rounds must be positive: %d", h.MaxInputRounds)
	}
	return access.ValidOrigins(h.AllowedOrigins)
}

// Cleanup leaves the shared session store; the last handler to leave
// closes the sessions still in it.
func (h *Handler) Cleanup() error {
	_, err := stores.Delete(storeKey)
	return err
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	stream := r.URL.Path == h.SSEPath && (r.Method == http.MethodGet || r.Method == http.MethodOptions)
	message := r.URL.Path == h.MessagePath && (r.Method == http.MethodPost || r.Method == http.MethodOptions)
	if !stream && !message {
		return next.ServeHTTP(w, r)
	}
	if !h.admit(w, r) {
		return nil
	}
	if r.Method == http.MethodGet {
		return h.serveStream(w, r, next)
	}
	return h.serveMessage(w, r, next)
}

// setSessionPlaceholder sets {http.mcp_sse.session_id} for the request, so
// that access logs and header directives can name the session. It adds a
// provider rather than calling Set: the replacer's map of set values is
// empty on most requests, and its first entry costs a 288-byte table, kept
// for a stream's whole life; a provider costs a closure.
func setSessionPlaceholder(r *http.Request, id string) {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(func(key string) (any, bool) {
			if key == sessionPlaceholder {
				return id, true
			}
			return nil, false
		})
	}
}

const sessionPlaceholder = "http.mcp_sse.session_id"

// writeError answers with a JSON-RPC error body. The transport wants JSON
// bodies on these errors, which is why the handler writes them itself
// instead of returning a caddyhttp.Error for Caddy's error pages.
func writeError(w http.ResponseWriter, status, code int, msg string) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(dispatch.ErrorResponse(nil, code, msg, nil))
	return err
}

// relativeRef returns the relative URL reference that, resolved against a
// URL whose path is from, names the path to. Both paths are absolute.
func relativeRef(from, to string) string {
	dirs := strings.Split(from[1:], "/")
	dirs = dirs[:len(dirs)-1] // the last segment of from is not a directory
	segs := strings.Split(to[1:], "/")
	i := 0
	for i < len(dirs) && i < len(segs)-1 && dirs[i] == segs[i] {
		i++
	}
	ref := strings.Repeat("../", len(dirs)-i) + strings.Join(segs[i:], "/")
	// A first segment with a colon would read as a scheme.
	if ref == "" || strings.Contains(strings.SplitN(ref, "/", 2)[0], ":") {
		ref = "./" + ref
	}
	return ref
}

// stopHandler ends every stream when the process exits. The "stopping"
// event also fires when a config is replaced by a reload, where streams
// must live on, so it acts only when Caddy is exiting.
type stopHandler struct{ store session.Store }

func (s stopHandler) Handle(context.Context, caddy.Event) error {
	if caddy.Exiting() {
		session.CloseAll(s.store, session.ReasonShutdown)
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyevents.Handler         = stopHandler{}
)
