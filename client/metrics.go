package client

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the chorus_client_* metrics. Labels are bounded: kinds and
// results from fixed lists, never a peer, mailbox, contact or epoch.
type metrics struct {
	connected      prometheus.Gauge
	connects       *prometheus.CounterVec // result: ok, failed
	documentEpoch  prometheus.Gauge
	documents      *prometheus.CounterVec // result: accepted, rejected, not_found
	packets        *prometheus.CounterVec // kind: fragment, retransmission, ping, loop, drop
	buildFailures  prometheus.Counter
	deliveries     *prometheus.CounterVec // kind: fragment, ack, loop, ping, unknown, invalid, stranger, duplicate
	messages       *prometheus.CounterVec // outcome: queued, delivered, failed, received
	loopRoundTrip  prometheus.Histogram
	storeFailures  prometheus.Counter
	sendQueue      prometheus.GaugeFunc
	retrievedEmpty prometheus.Counter
	unprepared     prometheus.Counter
}

var (
	packetKinds   = []string{"fragment", "retransmission", "ping", "loop", "drop"}
	deliveryKinds = []string{"fragment", "ack", "loop", "ping", "unknown", "invalid", "stranger", "duplicate"}
	outcomes      = []string{"queued", "delivered", "failed", "received"}
)

func newMetrics(reg prometheus.Registerer, sendQueue func() float64) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_client_connected",
			Help: "1 while the link to the provider is up, else 0.",
		}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_client_connects_total",
			Help: "Attempts to connect to the provider, by result (ok, failed).",
		}, []string{"result"}),
		documentEpoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_client_document_epoch",
			Help: "Epoch of the newest verified consensus document.",
		}),
		documents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_client_documents_total",
			Help: "Consensus documents received from the provider, by result (accepted, rejected, not_found).",
		}, []string{"result"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_client_packets_total",
			Help: "Sphinx packets built for the provider link, by kind (fragment, retransmission, ping, loop, drop).",
		}, []string{"kind"}),
		buildFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_client_packet_build_failures_total",
			Help: "Packets that could not be built (no usable document, a contact's provider missing from it).",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_client_deliveries_total",
			Help: "Mailbox entries retrieved, by kind (fragment, ack, loop, ping, unknown SURB, invalid, stranger, duplicate).",
		}, []string{"kind"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_client_messages_total",
			Help: "Messages by outcome (queued, delivered, failed, received).",
		}, []string{"outcome"}),
		loopRoundTrip: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chorus_client_loop_round_trip_seconds",
			Help:    "Time from sending a loop packet to retrieving it.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 10),
		}),
		storeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_client_store_failures_total",
			Help: "Writes to the encrypted state that failed.",
		}),
		sendQueue: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chorus_client_send_queue_packets",
			Help: "Fragments and pings waiting for a send slot.",
		}, sendQueue),
		retrievedEmpty: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_client_retrievals_empty_total",
			Help: "Retrievals answered with an empty mailbox.",
		}),
		unprepared: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_client_slots_unprepared_total",
			Help: "Decoy slots whose packet was not built ahead and had to be built when the slot came.",
		}),
	}
	for _, k := range []string{"ok", "failed"} {
		m.connects.WithLabelValues(k)
	}
	for _, k := range []string{"accepted", "rejected", "not_found"} {
		m.documents.WithLabelValues(k)
	}
	for _, k := range packetKinds {
		m.packets.WithLabelValues(k)
	}
	for _, k := range deliveryKinds {
		m.deliveries.WithLabelValues(k)
	}
	for _, k := range outcomes {
		m.messages.WithLabelValues(k)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{
			m.connected, m.connects, m.documentEpoch, m.documents, m.packets, m.buildFailures,
			m.deliveries, m.messages, m.loopRoundTrip, m.storeFailures, m.sendQueue, m.retrievedEmpty, m.unprepared,
		} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
