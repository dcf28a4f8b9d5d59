package hop

import (
	"errors"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
)

// KeySource gives the node's Sphinx private key for an epoch, if it holds
// one. It is called for every packet and must be cheap and safe for
// concurrent use.
type KeySource interface {
	Key(epoch uint64) (*keys.SphinxPrivateKey, bool)
}

// ReplayFilter records replay tags per epoch key. TestAndSet reports whether
// tag was seen before under that epoch's key and records it; an error (for
// example a full filter) means the packet must be refused.
type ReplayFilter = sphinx.ReplayFilter

// Action is what the node must do with a packet.
type Action uint8

const (
	// Drop: discard the packet; Decision.Reason says why.
	Drop Action = iota
	// Forward: send the (now rewritten) packet to NextHop after Delay.
	Forward
	// Deliver: the packet ended here; hand Payload to Recipient.
	Deliver
)

// Reason is why a packet was dropped. The set is small and fixed so that it
// can label a metric.
type Reason uint8

const (
	// ReasonNone: the packet was not dropped.
	ReasonNone Reason = iota
	// ReasonInvalid: no held key opens the packet, or it is malformed.
	ReasonInvalid
	// ReasonReplay: the packet was seen before.
	ReasonReplay
	// ReasonReplayFull: the replay filter cannot record more tags.
	ReasonReplayFull
)

var reasonNames = [...]string{"none", "invalid", "replay", "replay_filter_full"}

// String returns the reason as a metric label value.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every drop reason, for pre-registering metric labels.
func Reasons() []Reason { return []Reason{ReasonInvalid, ReasonReplay, ReasonReplayFull} }

// Decision is the outcome of Process. The embedded sphinx.Result holds the
// next hop and delay (Forward) or the recipient and payload (Deliver); its
// Payload points into the packet.
type Decision struct {
	Action Action
	Reason Reason
	// Epoch is the epoch whose key opened the packet.
	Epoch uint64
	sphinx.Result
}

// Processor unwraps packets for one node. It holds no per-packet state and
// is safe for concurrent use if its KeySource and ReplayFilter are.
type Processor struct {
	geo    *sphinx.Geometry
	keys   KeySource
	replay ReplayFilter
}

// New returns a Processor for packets of geometry geo.
func New(geo *sphinx.Geometry, keys KeySource, replay ReplayFilter) *Processor {
	if geo == nil || keys == nil || replay == nil {
		panic("hop: New needs a geometry, a key source and a replay filter")
	}
	return &Processor{geo: geo, keys: keys, replay: replay}
}

// Geometry returns the packet geometry this Processor handles.
func (p *Processor) Geometry() *sphinx.Geometry { return p.geo }

// Process removes this node's layer from pkt, in place, and fills d with what
// to do. current is the node's current epoch; the keys of current, current-1
// and current+1 are tried in that order, each at most once.
func (p *Processor) Process(pkt []byte, current uint64, d *Decision) {
	*d = Decision{}
	epochs, n := candidateEpochs(current)
	for _, e := range epochs[:n] {
		key, ok := p.keys.Key(e)
		if !ok {
			continue
		}
		// The replay check runs inside the unwrap, right after the MAC:
		// a replayed packet costs one ladder, not two.
		err := sphinx.UnwrapChecked(p.geo, key, pkt, &d.Result, p.replay, e)
		switch {
		case errors.Is(err, sphinx.ErrReplay):
			d.Epoch = e
			p.drop(d, ReasonReplay)
		case errors.Is(err, sphinx.ErrReplayRefused):
			d.Epoch = e
			p.drop(d, ReasonReplayFull)
		case err != nil:
			// Not this key's packet (pkt is untouched): try the next key.
			continue
		case d.Result.Action == sphinx.Forward:
			d.Epoch, d.Action = e, Forward
		default:
			d.Epoch, d.Action = e, Deliver
		}
		return
	}
	p.drop(d, ReasonInvalid)
}

func (p *Processor) drop(d *Decision, r Reason) {
	epoch := d.Epoch
	*d = Decision{Action: Drop, Reason: r, Epoch: epoch}
}

// candidateEpochs is the order keys are tried in: current, previous, next.
func candidateEpochs(current uint64) (e [3]uint64, n int) {
	if current == 0 {
		return [3]uint64{0, 1}, 2
	}
	return [3]uint64{current, current - 1, current + 1}, 3
}
