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
	// exchanges counts the exchanged tokens requests went on with, by
	// where they came from: exchanged (a request to the token endpoint)
	// or cached (the cache, or an exchange another request made).
	exchanges *prometheus.CounterVec
}

func initMetrics() {
	metrics.once.Do(func() {
		opts := func(name, help string) prometheus.Opts {
			return prometheus.Opts{Namespace: "caddy", Subsystem: "mcp_auth", Name: name, Help: help}
		}
		metrics.accepted = prometheus.NewCounter(prometheus.CounterOpts(opts("tokens_accepted_total",
			"Requests let through with a verified token.")))
		metrics.refused = prometheus.NewCounterVec(prometheus.CounterOpts(opts("tokens_refused_total",
			"Requests refused, by reason: missing, malformed, too_large, algorithm, unknown_key, signature, issuer, audience, expired, not_yet_valid, inactive, opaque, no_subject, insufficient_scope, unavailable, exchange_refused, exchange_unavailable.")), []string{"reason"})
		metrics.exchanges = prometheus.NewCounterVec(prometheus.CounterOpts(opts("token_exchanges_total",
			"Exchanged tokens (RFC 8693) requests went on with, by result: exchanged at the authorization server, or cached.")), []string{"result"})
	})
}

// registerMetrics registers the collectors into registry, tolerating the
// registration of an earlier provisioning of the same config.
func registerMetrics(registry *prometheus.Registry) error {
	initMetrics()
	for _, c := range []prometheus.Collector{metrics.accepted, metrics.refused, metrics.exchanges} {
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}
