package delay

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons: the values of the "reason" label of
// chorus_mix_delay_dropped_total.
const (
	reasonTooLate = "too_late" // delay above the document's maximum
	reasonFull    = "full"     // the packet or byte bound was reached
)

// metrics are a queue's chorus_mix_delay_* metrics; a nil *metrics counts
// nothing. The per-reason counters are resolved once, so counting costs
// no label lookup.
type metrics struct {
	tooLate  prometheus.Counter
	full     prometheus.Counter
	releases prometheus.Counter
	lateness prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, packets func() int, bytes func() int64) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chorus_mix_delay_dropped_total",
		Help: "Packets the delay queue dropped, by reason (too_late: delay above the maximum; full: a bound was reached).",
	}, []string{"reason"})
	m := &metrics{
		tooLate: dropped.WithLabelValues(reasonTooLate),
		full:    dropped.WithLabelValues(reasonFull),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_delay_released_total",
			Help: "Packets the delay queue released.",
		}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chorus_mix_delay_release_lateness_seconds",
			Help:    "How long after arrival plus its delay each packet was released.",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 50e-3, 250e-3, 1},
		}),
	}
	for _, c := range []prometheus.Collector{
		dropped, m.releases, m.lateness,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_mix_delay_queue_packets",
			Help: "Packets held in the delay queue.",
		}, func() float64 { return float64(packets()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_mix_delay_queue_bytes",
			Help: "Bytes of packets held in the delay queue.",
		}, func() float64 { return float64(bytes()) }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) dropped(reason string) {
	if m == nil {
		return
	}
	switch reason {
	case reasonTooLate:
		m.tooLate.Inc()
	case reasonFull:
		m.full.Inc()
	}
}

func (m *metrics) released(late time.Duration) {
	if m == nil {
		return
	}
	m.releases.Inc()
	m.lateness.Observe(max(late, 0).Seconds())
}
