package replay

import "github.com/prometheus/client_golang/prometheus"

// metrics are a Set's chorus_mix_replay_* metrics. None has a label: the
// gauges summarise all open filters (never one series per epoch).
type metrics struct {
	replays   prometheus.Counter
	refused   prometheus.Counter
	syncFails prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Set) (*metrics, error) {
	m := &metrics{
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_replay_replays_total",
			Help: "Packets whose replay tag was seen before for the same key (replays, or false positives).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_replay_refused_full_total",
			Help: "Packets refused because their key's replay filter was full.",
		}),
		syncFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_replay_sync_failures_total",
			Help: "Periodic syncs of the replay filters to disk that failed.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{
		m.replays, m.refused, m.syncFails,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_mix_replay_fill_ratio",
			Help: "Tags held over capacity of the fullest open replay filter; at 1 its key refuses new packets.",
		}, s.fillRatio),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_mix_replay_memory_bytes",
			Help: "Bytes mapped by the open replay filters (file-backed).",
		}, func() float64 { return float64(s.MemoryBytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_mix_replay_filters",
			Help: "Open replay filters (one per Sphinx key in use).",
		}, func() float64 { return float64(s.len()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) replay() {
	if m != nil {
		m.replays.Inc()
	}
}

func (m *metrics) full() {
	if m != nil {
		m.refused.Inc()
	}
}

func (m *metrics) syncFailed() {
	if m != nil {
		m.syncFails.Inc()
	}
}
