package mcpauth

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are created once per process and registered into the registry
// of every config that provisions an mcp_auth handler (Caddy gives each
// config a registry of its own), so they survive reloads with their
// counts.
var metrics struct {
	once     sync.Once
	accepted prometheus.Counter
	refused  *prometheus.CounterVec
}

func initMetrics() {
	metrics.once.Do(func() {
		opts := func(name, help string) prometheus.Opts {
			return prometheus.Opts{Namespace: "caddy", Subsystem: "mcp_auth", Name: name, Help: help}
		}
		metrics.accepted = prometheus.NewCounter(prometheus.CounterOpts(opts("tokens_accepted_total",
			"Requests let through with a verified token.")))
		metrics.refused = prometheus.NewCounterVec(prometheus.CounterOpts(opts("tokens_refused_total",
			"Requests refused, by reason: missing, malformed, too_large, algorithm, unknown_key, signature, issuer, audience, expired, not_yet_valid, inactive, opaque, no_subject, insufficient_scope, unavailable.")), []string{"reason"})
	})
}

// registerMetrics registers the collectors into registry, tolerating the
// registration of an earlier provisioning of the same config.
func registerMetrics(registry *prometheus.Registry) error {
	initMetrics()
	for _, c := range []prometheus.Collector{metrics.accepted, metrics.refused} {
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}
