package link

import (
	"errors"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the links of one daemon do. Create it once with
// NewMetrics and share it through Config.Metrics; a nil *Metrics counts
// nothing. Labels are bounded: side is "dial" or "listen", reason and kind
// are listed below; no label ever names a peer.
type Metrics struct {
	completed *prometheus.CounterVec // side
	failed    *prometheus.CounterVec // side, reason
	refused   *prometheus.CounterVec // side
	inFlight  *prometheus.GaugeVec   // side
	malformed *prometheus.CounterVec // kind
	sent      prometheus.Counter
	received  prometheus.Counter
}

// Handshake failure reasons (label "reason" of
// chorus_link_handshakes_failed_total).
const (
	reasonTimeout  = "timeout"  // the handshake did not finish in time
	reasonIO       = "io"       // the connection failed or was closed
	reasonProtocol = "protocol" // a message was malformed or failed authentication
)

// Malformed frame kinds (label "kind" of chorus_link_malformed_frames_total).
const (
	kindDecrypt = "decrypt" // the frame failed authentication
	kindDecode  = "decode"  // it authenticated but is not a valid frame
)

const (
	sideDial   = "dial"
	sideListen = "listen"
)

// NewMetrics creates the link metrics and registers them on reg. With a nil
// reg they are created but not registered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_link_handshakes_completed_total",
			Help: "Link handshakes that completed and were authorized.",
		}, []string{"side"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_link_handshakes_failed_total",
			Help: "Link handshakes that failed, by reason (timeout, io, protocol).",
		}, []string{"side", "reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_link_peers_refused_total",
			Help: "Peers whose static key was refused after a handshake (listen: Authorize said no; dial: not the expected key).",
		}, []string{"side"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chorus_link_handshakes_in_flight",
			Help: "Link handshakes in progress.",
		}, []string{"side"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_link_malformed_frames_total",
			Help: "Frames that failed authentication (decrypt) or decoding (decode); each closes its link.",
		}, []string{"kind"}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_link_frames_sent_total",
			Help: "Frames sent on all links, keepalives included.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chorus_link_frames_received_total",
			Help: "Frames received on all links, keepalives included.",
		}),
	}
	// Create every label combination up front, so the series exist (at
	// zero) from the start.
	for _, side := range []string{sideDial, sideListen} {
		m.completed.WithLabelValues(side)
		m.refused.WithLabelValues(side)
		m.inFlight.WithLabelValues(side)
		for _, r := range []string{reasonTimeout, reasonIO, reasonProtocol} {
			m.failed.WithLabelValues(side, r)
		}
	}
	m.malformed.WithLabelValues(kindDecrypt)
	m.malformed.WithLabelValues(kindDecode)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.completed, m.failed, m.refused, m.inFlight, m.malformed, m.sent, m.received} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) handshakeStarted(side string) {
	if m != nil {
		m.inFlight.WithLabelValues(side).Inc()
	}
}

func (m *Metrics) handshakeEnded(side string) {
	if m != nil {
		m.inFlight.WithLabelValues(side).Dec()
	}
}

func (m *Metrics) handshakeCompleted(side string) {
	if m != nil {
		m.completed.WithLabelValues(side).Inc()
	}
}

func (m *Metrics) handshakeFailed(side, reason string) {
	if m != nil {
		m.failed.WithLabelValues(side, reason).Inc()
	}
}

func (m *Metrics) peerRefused(side string) {
	if m != nil {
		m.refused.WithLabelValues(side).Inc()
	}
}

func (m *Metrics) malformedFrame(kind string) {
	if m != nil {
		m.malformed.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) frameSent() {
	if m != nil {
		m.sent.Inc()
	}
}

func (m *Metrics) frameReceived() {
	if m != nil {
		m.received.Inc()
	}
}

// failureReason classifies a handshake error into a bounded label value.
func failureReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errHandshake):
		return reasonProtocol
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	default:
		return reasonIO
	}
}
