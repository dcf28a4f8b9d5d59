package forward

import "github.com/prometheus/client_golang/prometheus"

// metrics are a Forwarder's chorus_mix_forward_* metrics. None has a
// label: never one series per peer.
type metrics struct {
	sent       prometheus.Counter
	dials      prometheus.Counter
	unexpected prometheus.Counter
	connected  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, f *Forwarder) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_forward_packets_sent_total",
			Help: "Packets sent to next hops.",
		}),
		dials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_forward_dials_failed_total",
			Help: "Dials of next hops that failed (each is retried with backoff).",
		}),
		unexpected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_forward_unexpected_commands_total",
			Help: "Commands a next hop sent back on a link this node dialled (ignored).",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_mix_forward_peers_connected",
			Help: "Next hops with an established link.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.sent, m.dials, m.unexpected, m.connected,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_mix_forward_peers",
			Help: "Next hops the documents list (links wanted).",
		}, func() float64 { n, _ := f.Peers(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_mix_forward_queue_packets",
			Help: "Packets queued for next hops, summed over peers.",
		}, func() float64 { return float64(f.Queued()) }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) dialFailed() { m.dials.Inc() }
