package authority

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// Rejection reasons: the only values of the reason label.
const (
	reasonTooLarge     = "too_large"
	reasonMalformed    = "malformed"
	reasonInvalid      = "invalid"
	reasonBadSignature = "bad_signature"
	reasonUnknownNode  = "unknown_node"
	reasonWrongEpoch   = "wrong_epoch"
	reasonLate         = "late"
	reasonInternal     = "internal"
)

var rejectReasons = []string{reasonTooLarge, reasonMalformed, reasonInvalid, reasonBadSignature, reasonUnknownNode, reasonWrongEpoch, reasonLate, reasonInternal}

// States of the round for the next epoch: the only values of the state label.
const (
	stateDescriptors = "descriptors" // accepting descriptors
	stateVoting      = "voting"      // own vote made, collecting peers' votes
	stateRevealing   = "revealing"   // own reveal published, collecting reveals
	stateSigning     = "signing"     // document computed, collecting signatures
	statePublished   = "published"   // document published
	stateFailed      = "failed"      // no document this round
)

var states = []string{stateDescriptors, stateVoting, stateRevealing, stateSigning, statePublished, stateFailed}

// phases are the pki/epoch timetable phases: the only values of the phase label.
var phases = []string{epoch.Upload.String(), epoch.Vote.String(), epoch.Reveal.String(), epoch.Sign.String(), epoch.Publish.String()}

type metrics struct {
	accepted      prometheus.Counter
	rejected      *prometheus.CounterVec
	votes         prometheus.Counter
	consensus     *prometheus.CounterVec
	epoch         prometheus.Gauge
	phase         *prometheus.GaugeVec
	round         *prometheus.GaugeVec
	peerFailures  prometheus.Counter
	peerResponses prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_authority_descriptors_accepted_total",
			Help: "Descriptor uploads accepted.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_authority_descriptors_rejected_total",
			Help: "Descriptor uploads rejected, by reason.",
		}, []string{"reason"}),
		votes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_authority_votes_received_total",
			Help: "Valid votes received from peer authorities.",
		}),
		consensus: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_authority_consensus_total",
			Help: "Consensus rounds by result: reached (a document with enough signatures) or failed.",
		}, []string{"result"}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chorus_authority_epoch",
			Help: "The current epoch.",
		}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chorus_authority_phase",
			Help: "1 for the timetable phase of the current epoch, 0 for the others.",
		}, []string{"phase"}),
		round: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chorus_authority_round_state",
			Help: "1 for the state of this authority's round for the next epoch's document, 0 for the others.",
		}, []string{"state"}),
		peerFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_authority_peer_request_failures_total",
			Help: "Requests to peer authorities that failed or returned something unusable.",
		}),
		peerResponses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_authority_peer_requests_total",
			Help: "Requests made to peer authorities.",
		}),
	}
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range []string{"reached", "failed"} {
		m.consensus.WithLabelValues(r)
	}
	setOne(m.phase, phases, "")
	setOne(m.round, states, "")
	for _, c := range []prometheus.Collector{m.accepted, m.rejected, m.votes, m.consensus, m.epoch, m.phase, m.round, m.peerFailures, m.peerResponses} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) setPhase(p string) { setOne(m.phase, phases, p) }
func (m *metrics) setRound(s string) { setOne(m.round, states, s) }

// setOne sets the gauge of value to 1 and the others to 0.
func setOne(g *prometheus.GaugeVec, values []string, value string) {
	for _, v := range values {
		x := 0.0
		if v == value {
			x = 1
		}
		g.WithLabelValues(v).Set(x)
	}
}
