package rotation

import "github.com/prometheus/client_golang/prometheus"

// Operations that can fail: the values of the "op" label of
// chorus_mix_rotation_errors_total.
const (
	opLoad   = "load"   // reading a key file
	opCreate = "create" // generating and writing a new key
	opErase  = "erase"  // erasing a retired key's file
)

// metrics are a Rotation's chorus_mix_rotation_* metrics.
type metrics struct {
	creates prometheus.Counter
	retires prometheus.Counter
	errors  *prometheus.CounterVec
	keys    prometheus.GaugeFunc
}

func newMetrics(r *Rotation) *metrics {
	m := &metrics{
		creates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_rotation_keys_created_total",
			Help: "Sphinx keys created.",
		}),
		retires: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_rotation_keys_retired_total",
			Help: "Sphinx keys retired: withdrawn and their files erased.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_mix_rotation_errors_total",
			Help: "Failed key operations, by op (load, create, erase); each is retried.",
		}, []string{"op"}),
		keys: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_mix_rotation_keys",
			Help: "Sphinx keys held in memory: the current epoch's, the next three's, and the previous one's during its grace period.",
		}, func() float64 { return float64(r.inUse()) }),
	}
	for _, op := range []string{opLoad, opCreate, opErase} {
		m.errors.WithLabelValues(op)
	}
	return m
}

// register registers the metrics on reg; nil registers nothing.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.creates, m.retires, m.errors, m.keys} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) created()         { m.creates.Inc() }
func (m *metrics) retired()         { m.retires.Inc() }
func (m *metrics) failed(op string) { m.errors.WithLabelValues(op).Inc() }
