package provider

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Label values. Every label of the chorus_provider_* metrics takes its
// values from one of these fixed sets; none names a client, a mailbox or
// an epoch.
const (
	// delivery kinds
	kindMessage = "message" // a forward packet for a mailbox
	kindReply   = "reply"   // a SURB reply (an ACK, a loop, an echo answer) for a mailbox
	kindEcho    = "echo"    // for the echo service
	kindDrop    = "drop"    // a drop decoy

	// reasons a delivery is refused
	refusedUnknown  = "unknown_mailbox" // no registered key owns the mailbox
	refusedFull     = "mailbox_full"    // over MaxMessages or MaxBytes
	refusedTooLarge = "too_large"       // larger than the mailbox may ever hold
	refusedFailed   = "store_failed"    // the spool failed (disk full, I/O error)
	refusedBusy     = "store_busy"      // the store queue is full
	refusedShutdown = "shutdown"        // the spool closed during the drain

	// reply kinds and reasons a reply is dropped
	replyACK         = "ack"
	replyEcho        = "echo"
	replyNoSURB      = "no_surb"     // an echo request without a SURB
	replyFirstHop    = "first_hop"   // the SURB starts at a node this provider does not send to
	replyUnavailable = "unavailable" // the pipeline is draining, or its queue is full

	// control commands
	cmdSend      = "send"
	cmdRetrieve  = "retrieve"
	cmdAck       = "ack"
	cmdConsensus = "consensus"

	// why a client link ended
	endClosed     = "closed"             // the client disconnected
	endMalformed  = "malformed"          // a frame failed authentication or decoding
	endTimeout    = "timeout"            // the client went silent
	endUnexpected = "unexpected_command" // a command only a provider sends
	endReplaced   = "replaced"           // the same key connected again
	endShutdown   = "shutdown"           // the provider is stopping
	endError      = "error"              // any other link failure
)

type metrics struct {
	clients       prometheus.Gauge
	clientsFull   prometheus.Counter
	ends          *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	clientPackets prometheus.Counter
	deliveries    *prometheus.CounterVec
	refused       *prometheus.CounterVec
	replies       *prometheus.CounterVec
	repliesLost   *prometheus.CounterVec
	retrievals    *prometheus.CounterVec
	acks          *prometheus.CounterVec
	consensus     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, gauges ...prometheus.Collector) (*metrics, error) {
	m := &metrics{
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_provider_clients_connected",
			Help: "Client links open now.",
		}),
		clientsFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_provider_clients_refused_total",
			Help: "Client links refused after the handshake because MaxClients links were open.",
		}),
		ends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_provider_client_disconnects_total",
			Help: "Client links that ended, by reason: closed, malformed, timeout, unexpected_command, replaced, shutdown, error.",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_provider_rate_limited_total",
			Help: "Client commands over the client's rate: send (packet dropped), retrieve (answered empty), ack and consensus (ignored).",
		}, []string{"command"}),
		clientPackets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_provider_client_packets_total",
			Help: "Packets from clients taken into the pipeline as first hop.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_provider_deliveries_total",
			Help: "Packets that ended here, by kind: message, reply (SURB replies for a mailbox), echo, drop (decoys, discarded).",
		}, []string{"kind"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_provider_deliveries_refused_total",
			Help: "Packets for a mailbox that were not stored (and not acknowledged), by reason.",
		}, []string{"reason"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_provider_replies_sent_total",
			Help: "SURB replies sent into the network, by kind: ack (after the message was stored durably), echo.",
		}, []string{"kind"}),
		repliesLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_provider_replies_dropped_total",
			Help: "SURB replies not sent, by kind and reason: no_surb, first_hop, unavailable.",
		}, []string{"kind", "reason"}),
		retrievals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_provider_retrievals_total",
			Help: "RetrieveMessage answers, by result: message, empty, error (answered empty).",
		}, []string{"result"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_provider_message_acks_total",
			Help: "MessageAck commands from clients, by result: ok, error.",
		}, []string{"result"}),
		consensus: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_provider_consensus_requests_total",
			Help: "GetConsensus answers, by status: ok, not_found, gone.",
		}, []string{"status"}),
	}
	for _, r := range []string{endClosed, endMalformed, endTimeout, endUnexpected, endReplaced, endShutdown, endError} {
		m.ends.WithLabelValues(r)
	}
	for _, c := range []string{cmdSend, cmdRetrieve, cmdAck, cmdConsensus} {
		m.rateLimited.WithLabelValues(c)
	}
	for _, k := range []string{kindMessage, kindReply, kindEcho, kindDrop} {
		m.deliveries.WithLabelValues(k)
	}
	for _, r := range []string{refusedUnknown, refusedFull, refusedTooLarge, refusedFailed, refusedBusy, refusedShutdown} {
		m.refused.WithLabelValues(r)
	}
	for _, k := range []string{replyACK, replyEcho} {
		m.replies.WithLabelValues(k)
		m.repliesLost.WithLabelValues(k, replyFirstHop)
		m.repliesLost.WithLabelValues(k, replyUnavailable)
	}
	m.repliesLost.WithLabelValues(replyEcho, replyNoSURB)
	for _, r := range []string{"message", "empty", "error"} {
		m.retrievals.WithLabelValues(r)
	}
	m.acks.WithLabelValues("ok")
	m.acks.WithLabelValues("error")
	for _, s := range []string{"ok", "not_found", "gone"} {
		m.consensus.WithLabelValues(s)
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.clients, m.clientsFull, m.ends, m.rateLimited, m.clientPackets, m.deliveries,
		m.refused, m.replies, m.repliesLost, m.retrievals, m.acks, m.consensus}
	for _, c := range append(cs, gauges...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
