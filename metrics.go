package mcpsse

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are created once per process and registered into the registry
// of every config that provisions an mcp_sse handler (Caddy gives each
// config a registry of its own), so they survive reloads with their
// counts.
var metrics struct {
	once           sync.Once
	sessionsActive prometheus.GaugeFunc
	opened         prometheus.Counter
	closed         *prometheus.CounterVec
	messages       *prometheus.CounterVec
	messagesIn     prometheus.Counter // messages{direction="in"}, resolved once
	messagesOut    prometheus.Counter // messages{direction="out"}
	dispatch       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	keepalives     prometheus.Counter
	refused        *prometheus.CounterVec
	reattached     *prometheus.CounterVec
	// Cluster mode: messages posted on one instance and dispatched by
	// another, and how long they took to cross.
	clusterMessages *prometheus.CounterVec
	clusterLatency  prometheus.Histogram
	takeovers       prometheus.Counter
	// The sessionless path: rounds of input requests clients answered,
	// subscriptions/listen streams open upstream.
	inputRounds   prometheus.Counter
	listenStreams prometheus.Gauge
}

const metricsNamespace, metricsSubsystem = "caddy", "mcp_sse"

func initMetrics() {
	metrics.once.Do(func() {
		opts := func(name, help string) prometheus.Opts {
			return prometheus.Opts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
		}
		metrics.sessionsActive = prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("sessions_active", "Open MCP HTTP+SSE sessions.")),
			func() float64 { return float64(liveSessionCount()) })
		metrics.opened = prometheus.NewCounter(prometheus.CounterOpts(opts("sessions_opened_total", "Sessions opened.")))
		metrics.closed = prometheus.NewCounterVec(prometheus.CounterOpts(opts("sessions_closed_total", "Sessions closed, by reason.")), []string{"reason"})
		metrics.messages = prometheus.NewCounterVec(prometheus.CounterOpts(opts("messages_total",
			"JSON-RPC messages, by direction: in (posted by clients), out (written to streams).")), []string{"direction"})
		metrics.messagesIn = metrics.messages.WithLabelValues("in")
		metrics.messagesOut = metrics.messages.WithLabelValues("out")
		metrics.dispatch = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "dispatch_duration_seconds",
			Help:    "Time from handing a message to the upstream to the end of its reply, by JSON-RPC method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"method"})
		metrics.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts(opts("upstream_errors_total",
			"Dispatches that produced no response from the upstream, by kind.")), []string{"kind"})
		metrics.keepalives = prometheus.NewCounter(prometheus.CounterOpts(opts("keepalives_total", "Keepalive frames written.")))
		metrics.reattached = prometheus.NewCounterVec(prometheus.CounterOpts(opts("sessions_reattached_total",
			"Streams re-attached to a session that outlived its previous stream, by proof: last_event_id, cookie, identity.")), []string{"via"})
		metrics.refused = prometheus.NewCounterVec(prometheus.CounterOpts(opts("posts_refused_total",
			"POSTs refused for a limit on work in flight, by limit: max_inflight, max_pending_bytes.")), []string{"limit"})
		metrics.clusterMessages = prometheus.NewCounterVec(prometheus.CounterOpts(opts("cluster_messages_total",
			"Cluster mode: messages that crossed instances, by direction: sent (posted here for a session owned elsewhere), received (posted elsewhere, dispatched here).")), []string{"direction"})
		metrics.clusterLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "cluster_message_seconds",
			Help:    "Cluster mode: time from a POST on one instance to its dispatch by the session's owner.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 10),
		})
		metrics.takeovers = prometheus.NewCounter(prometheus.CounterOpts(opts("cluster_takeovers_total",
			"Cluster mode: sessions this instance took over from another, whose client re-attached here.")))
		metrics.inputRounds = prometheus.NewCounter(prometheus.CounterOpts(opts("input_rounds_total",
			"Sessionless upstreams: rounds of input requests (elicitation, sampling, roots) a client answered for a server's InputRequiredResult.")))
		metrics.listenStreams = prometheus.NewGauge(prometheus.GaugeOpts(opts("listen_streams",
			"Sessionless upstreams: subscriptions/listen streams open upstream, one per initialized session.")))
	})
}

// registerMetrics registers the collectors into registry, tolerating the
// registration of an earlier provisioning of the same config.
func registerMetrics(registry *prometheus.Registry) error {
	initMetrics()
	for _, c := range []prometheus.Collector{metrics.sessionsActive, metrics.opened, metrics.closed,
		metrics.messages, metrics.dispatch, metrics.upstreamErrors, metrics.keepalives, metrics.refused, metrics.reattached,
		metrics.clusterMessages, metrics.clusterLatency, metrics.takeovers, metrics.inputRounds, metrics.listenStreams} {
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

// knownMethods bounds the method label: clients choose method names, and
// a label per name would let any client grow the metrics without end.
var knownMethods = map[string]bool{
	"initialize": true, "ping": true, "server/discover": true,
	"tools/list": true, "tools/call": true,
	"resources/list": true, "resources/read": true, "resources/templates/list": true,
	"resources/subscribe": true, "resources/unsubscribe": true,
	"prompts/list": true, "prompts/get": true, "completion/complete": true,
	"logging/setLevel": true, "tasks/get": true, "tasks/list": true, "tasks/result": true, "tasks/cancel": true,
}

func methodLabel(method string) string {
	switch {
	case knownMethods[method]:
		return method
	case method == "":
		return "response" // a client's answer to a server request
	case len(method) > 14 && method[:14] == "notifications/":
		return "notification"
	default:
		return "other"
	}
}

func observeDispatch(method string, d time.Duration) {
	metrics.dispatch.WithLabelValues(methodLabel(method)).Observe(d.Seconds())
}

func countInputRound() { metrics.inputRounds.Inc() }

func countListenStream(delta int) { metrics.listenStreams.Add(float64(delta)) }

func countUpstreamError(kind string) { metrics.upstreamErrors.WithLabelValues(kind).Inc() }
