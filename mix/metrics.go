package mix

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chorus-mixnet/chorus/mix/forward"
	"github.com/chorus-mixnet/chorus/mix/hop"
)

// Drop reasons of chorus_mix_packets_dropped_total besides hop's
// (invalid, replay, replay_filter_full) and forward's (queue_full,
// no_peer, peer_gone, shutdown).
const (
	dropTooLate    = "too_late"     // NodeDelay above the document's maximum
	dropDelayFull  = "delay_full"   // the delay queue is at its bound
	dropDeliver    = "deliver"      // ended here, and this node delivers nothing
	dropLoop       = "loop_unknown" // a loop packet this node is not waiting for
	dropNoDocument = "no_document"  // no document to route by
)

func dropReasons() []string {
	rs := []string{dropTooLate, dropDelayFull, dropDeliver, dropLoop, dropNoDocument}
	for _, r := range hop.Reasons() {
		rs = append(rs, r.String())
	}
	return append(rs, forward.DropReasons()...)
}

// metrics are the pipeline's chorus_mix_* metrics. Labels are bounded:
// only reason, from the fixed set above.
type metrics struct {
	in        prometheus.Counter
	delivered prometheus.Counter
	dropped   *prometheus.CounterVec
	drops     map[string]prometheus.Counter // resolved once: no lookup per packet
	hopDrops  [8]prometheus.Counter         // by hop.Reason
	unwrap    prometheus.Histogram
	links     prometheus.Gauge
	unexpect  prometheus.Counter
	epoch     prometheus.Gauge
	uploads   *prometheus.CounterVec

	loopSent, loopReceived, loopLost prometheus.Counter
	loopRTT                          prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, gauges []prometheus.Collector) (*metrics, error) {
	m := &metrics{
		in: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_packets_in_total",
			Help: "Packets received from links and other sources, before unwrapping.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_packets_delivered_total",
			Help: "Packets that ended at this node and were handed over (own loop packets included).",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_mix_packets_dropped_total",
			Help: "Packets dropped, by reason: invalid, replay, replay_filter_full (hop); too_late, delay_full (delay); queue_full, no_peer, peer_gone, shutdown (forward); deliver, loop_unknown, no_document.",
		}, []string{"reason"}),
		unwrap: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chorus_mix_unwrap_seconds",
			Help:    "Time to process one packet: key trials, unwrap and replay check.",
			Buckets: []float64{25e-6, 50e-6, 75e-6, 100e-6, 150e-6, 200e-6, 300e-6, 500e-6, 1e-3, 2e-3, 5e-3},
		}),
		links: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_mix_links_incoming",
			Help: "Incoming links from nodes the documents allow to send here.",
		}),
		unexpect: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_unexpected_commands_total",
			Help: "Link commands other than SendPacket received on node links (ignored).",
		}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_mix_document_epoch",
			Help: "Epoch of the newest current document held.",
		}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_mix_descriptor_uploads_total",
			Help: "Descriptor uploads, by result (accepted: by at least the threshold of authorities).",
		}, []string{"result"}),
		loopSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_loop_sent_total",
			Help: "Loop cover packets sent through the network back to this node.",
		}),
		loopReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_loop_received_total",
			Help: "Loop cover packets that came back.",
		}),
		loopLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_mix_loop_lost_total",
			Help: "Loop cover packets that did not come back in time.",
		}),
		loopRTT: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chorus_mix_loop_rtt_seconds",
			Help:    "Round trip of loop cover packets, drawn delays included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
	}
	m.drops = make(map[string]prometheus.Counter)
	for _, r := range dropReasons() {
		m.drops[r] = m.dropped.WithLabelValues(r)
	}
	for _, r := range hop.Reasons() {
		m.hopDrops[r] = m.drops[r.String()]
	}
	m.uploads.WithLabelValues("accepted")
	m.uploads.WithLabelValues("failed")
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.in, m.delivered, m.dropped, m.unwrap, m.links, m.unexpect, m.epoch, m.uploads,
		m.loopSent, m.loopReceived, m.loopLost, m.loopRTT}
	for _, c := range append(cs, gauges...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) drop(reason string) { m.drops[reason].Inc() }

// dropWarner logs, at most once per interval, how many packets were
// dropped since the last warning: drops are counted per packet but never
// logged per packet.
func dropWarner(ctx context.Context, m *metrics, log *slog.Logger, interval time.Duration) {
	last := make(map[string]float64)
	read := func() map[string]float64 {
		now := make(map[string]float64, len(m.drops))
		for r, c := range m.drops {
			now[r] = counterValue(c)
		}
		return now
	}
	last = read()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := read()
		var attrs []any
		var total float64
		for r, v := range now {
			if d := v - last[r]; d > 0 {
				attrs = append(attrs, r, d)
				total += d
			}
		}
		last = now
		if total > 0 {
			log.Warn("mix: packets dropped", append([]any{"total", total, "interval", interval}, attrs...)...)
		}
	}
}

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
