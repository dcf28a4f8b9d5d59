package users

import "github.com/prometheus/client_golang/prometheus"

// Refusal reasons: the only values of the reason label.
const (
	reasonClosed      = "closed"       // unknown key under closed registration
	reasonRateLimited = "rate_limited" // the source address used up its allowance
	reasonTableFull   = "limiter_full" // too many source addresses this window
	reasonFull        = "full"         // the registry holds MaxUsers keys
	reasonInvalid     = "invalid"      // the all-zero key
	reasonError       = "error"        // the database failed
)

var refuseReasons = []string{reasonClosed, reasonRateLimited, reasonTableFull, reasonFull, reasonInvalid, reasonError}

type metrics struct {
	registrations prometheus.Counter
	refused       *prometheus.CounterVec
	users         prometheus.Gauge
	tracked       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		registrations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_provider_users_registrations_total",
			Help: "Client keys registered on first connection under open registration.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_provider_users_registrations_refused_total",
			Help: "Connections from unknown client keys that were not registered, by reason.",
		}, []string{"reason"}),
		users: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_provider_users_registered",
			Help: "Client keys in the registry.",
		}),
		tracked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_provider_users_limiter_addresses",
			Help: "Source addresses (IPv4 addresses, IPv6 /64s) the registration rate limiter holds.",
		}),
	}
	for _, r := range refuseReasons {
		m.refused.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.registrations, m.refused, m.users, m.tracked} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
