package spool

import "github.com/prometheus/client_golang/prometheus"

// Eviction reasons: the only values of the reason label.
const (
	reasonAge     = iota // older than MaxAge
	reasonCount          // the mailbox held more than MaxMessages
	reasonBytes          // the mailbox held more than MaxBytes
	reasonCorrupt        // the record failed its checksum
	numReasons
)

var reasonNames = [numReasons]string{"age", "count", "bytes", "corrupt"}

type metrics struct {
	stored    prometheus.Counter
	delivered prometheus.Counter
	evicted   [numReasons]prometheus.Counter
	failed    prometheus.Counter
	messages  prometheus.Gauge
	bytes     prometheus.Gauge
	fsync     prometheus.Histogram
	batch     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	evicted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chorus_provider_spool_messages_evicted_total",
		Help: "Messages removed before the client acknowledged them, by reason: age, count, bytes (retention limits) or corrupt.",
	}, []string{"reason"})
	m := &metrics{
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_provider_spool_messages_stored_total",
			Help: "Messages stored durably.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_provider_spool_messages_delivered_total",
			Help: "Messages removed after the client acknowledged them.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_provider_spool_commit_failures_total",
			Help: "Commits that failed (a full disk, an I/O error); every message in them was refused.",
		}),
		messages: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_provider_spool_messages",
			Help: "Messages held in all mailboxes.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_provider_spool_bytes",
			Help: "Payload bytes held in all mailboxes.",
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chorus_provider_spool_fsync_seconds",
			Help:    "Duration of each commit: writing the batch's pages and fsyncing them and the meta page.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100 µs to 3.3 s
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chorus_provider_spool_batch_operations",
			Help:    "Operations (stores, acknowledgements, expiries) per commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 to 1024
		}),
	}
	for i, name := range reasonNames {
		m.evicted[i] = evicted.WithLabelValues(name)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.stored, m.delivered, evicted, m.failed, m.messages, m.bytes, m.fsync, m.batch} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
