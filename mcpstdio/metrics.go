package mcpstdio

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are created once per process and registered into the registry
// of every config that provisions an mcp_stdio handler (Caddy gives each
// config a registry of its own), so they survive reloads with their
// counts.
var metrics struct {
	once    sync.Once
	active  prometheus.GaugeFunc
	pending prometheus.GaugeFunc
	started prometheus.Counter
	exited  *prometheus.CounterVec
	refused *prometheus.CounterVec
	slow    prometheus.Counter

	inputRounds   prometheus.Counter
	inputTimeouts prometheus.Counter
	stateRefused  prometheus.Counter
}

func initMetrics() {
	metrics.once.Do(func() {
		opts := func(name, help string) prometheus.Opts {
			return prometheus.Opts{Namespace: "caddy", Subsystem: "mcp_stdio", Name: name, Help: help}
		}
		metrics.active = prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("processes_active", "MCP server processes running.")),
			func() float64 {
				if reg := currentRegistry(); reg != nil {
					return float64(reg.runningCount())
				}
				return 0
			})
		metrics.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("pending_bytes",
			"Bytes of POST bodies held: being read, or waiting for their process to take them (bounded by max_pending_bytes).")),
			func() float64 {
				if reg := currentRegistry(); reg != nil {
					return float64(reg.bodies.Held.Load())
				}
				return 0
			})
		metrics.started = prometheus.NewCounter(prometheus.CounterOpts(opts("processes_started_total", "MCP server processes started.")))
		metrics.exited = prometheus.NewCounterVec(prometheus.CounterOpts(opts("processes_exited_total",
			"MCP server processes gone, by why their session ended (start_failed: the command could not start).")), []string{"reason"})
		metrics.refused = prometheus.NewCounterVec(prometheus.CounterOpts(opts("refused_total",
			"POSTs refused for a limit, by limit: max_pending_bytes, max_inflight, max_batch_size, body_timeout.")), []string{"limit"})
		metrics.slow = prometheus.NewCounter(prometheus.CounterOpts(opts("slow_consumers_total",
			"Client streams closed because their client let them stay full for send_timeout.")))
		metrics.inputRounds = prometheus.NewCounter(prometheus.CounterOpts(opts("input_rounds_total",
			"InputRequiredResults given to 2026-07-28 clients for requests of their processes (elicitation, sampling, roots).")))
		metrics.inputTimeouts = prometheus.NewCounter(prometheus.CounterOpts(opts("input_timeouts_total",
			"Input rounds whose retry did not come within input_timeout.")))
		metrics.stateRefused = prometheus.NewCounter(prometheus.CounterOpts(opts("request_state_refused_total",
			"Retries refused for their requestState: forged, another principal's, expired, spent, or awaited by no request.")))
	})
}

// registerMetrics registers the collectors into registry, tolerating the
// registration of an earlier provisioning of the same config.
func registerMetrics(registry *prometheus.Registry) error {
	initMetrics()
	for _, c := range []prometheus.Collector{metrics.active, metrics.pending, metrics.started, metrics.exited, metrics.refused, metrics.slow, metrics.inputRounds, metrics.inputTimeouts, metrics.stateRefused} {
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}
