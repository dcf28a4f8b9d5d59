package provider

import (
	"errors"
	"time"

	"github.com/chorus-mixnet/chorus/mix/forward"
	"github.com/chorus-mixnet/chorus/mix/hop"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/provider/spool"
	"github.com/chorus-mixnet/chorus/provider/users"
)

// The forward payload a client builds (docs/edge-protocol.md, item 4):
//
//	flags (1) | reserved (1) | SURB (SURBLength) | user payload
//
// Flag bit 0 says a SURB is present. Geometries without SURB room carry
// the user payload alone.
const (
	flagSURB      = 1
	payloadHeader = 2
	flagsOffset   = 0
)

// delivery is a packet that ended here, waiting for a store worker.
type delivery struct {
	echo    bool // for the echo service; else for mailbox
	mailbox [users.MailboxIDLength]byte
	// encoded is the sphinx.Delivery encoding (a mailbox entry), or, for
	// the echo service, a copy of the forward payload.
	encoded []byte
}

// deliver is the pipeline's Deliver hook: it runs on the pipeline's
// workers, so it only sorts and copies; storing and replying happen on
// the store workers. d.Payload is reused when deliver returns.
func (p *Provider) deliver(d *hop.Decision) {
	switch d.Recipient {
	case sphinx.DropRecipient():
		p.m.deliveries.WithLabelValues(kindDrop).Inc()
		return
	case sphinx.EchoRecipient():
		p.m.deliveries.WithLabelValues(kindEcho).Inc()
		if d.IsSURBReply {
			p.m.repliesLost.WithLabelValues(replyEcho, replyNoSURB).Inc()
			return
		}
		p.enqueue(delivery{echo: true, encoded: append([]byte(nil), d.Payload...)})
		return
	}
	kind := kindMessage
	if d.IsSURBReply {
		kind = kindReply
	}
	p.m.deliveries.WithLabelValues(kind).Inc()
	// Never a mailbox for a stranger: a flood to random IDs would make
	// mailboxes without bound.
	if _, ok := p.users.Lookup(d.Recipient); !ok {
		p.m.refused.WithLabelValues(refusedUnknown).Inc()
		return
	}
	geo := p.geometry()
	enc, err := sphinx.AppendDelivery(make([]byte, 0, geo.DeliveryLength()), geo, sphinx.NewDelivery(&d.Result))
	if err != nil {
		// Unwrap hands out payloads of the geometry's lengths; this is a
		// programming error, not a bad packet.
		panic("provider: encode delivery: " + err.Error())
	}
	p.enqueue(delivery{mailbox: d.Recipient, encoded: enc})
}

// enqueue hands a delivery to the store workers, or refuses it if they
// are too far behind.
func (p *Provider) enqueue(d delivery) {
	p.storing.Add(1)
	select {
	case p.storeQ <- d:
	default:
		p.storing.Add(-1)
		if d.echo {
			p.m.repliesLost.WithLabelValues(replyEcho, replyUnavailable).Inc()
		} else {
			p.m.refused.WithLabelValues(refusedBusy).Inc()
		}
	}
}

// storeWorker stores deliveries and sends replies until the store queue
// is closed.
func (p *Provider) storeWorker() {
	for d := range p.storeQ {
		if d.echo {
			p.echo(d.encoded)
		} else {
			p.store(&d)
		}
		p.storing.Add(-1)
	}
}

// store puts a delivery in its mailbox and, only once it is durable,
// sends the ACK its SURB asks for. A packet that cannot be stored gets no
// ACK, so its sender sends it again, and eventually reports failure.
func (p *Provider) store(d *delivery) {
	if err := p.put(d.mailbox, d.encoded); err != nil {
		reason := refusedFailed
		switch {
		case errors.Is(err, spool.ErrFull):
			reason = refusedFull
		case errors.Is(err, spool.ErrTooLarge):
			reason = refusedTooLarge
		case errors.Is(err, spool.ErrClosed):
			reason = refusedShutdown
		}
		p.m.refused.WithLabelValues(reason).Inc()
		return
	}
	geo := p.geometry()
	entry, err := sphinx.ParseDelivery(geo, d.encoded)
	if err != nil || entry.IsSURBReply {
		return // replies are never acknowledged
	}
	surb, _, ok := splitForward(geo, entry.Payload)
	if !ok {
		return // sent without a SURB: no ACK wanted
	}
	p.reply(replyACK, surb, nil)
}

// echo answers an echo request through its SURB with the same user
// payload.
func (p *Provider) echo(payload []byte) {
	surb, user, ok := splitForward(p.geometry(), payload)
	if !ok {
		p.m.repliesLost.WithLabelValues(replyEcho, replyNoSURB).Inc()
		return
	}
	p.reply(replyEcho, surb, user)
}

// splitForward splits a forward payload into its SURB, if the flags say
// there is one, and the user payload.
func splitForward(geo *sphinx.Geometry, payload []byte) (surb, user []byte, ok bool) {
	if !geo.WithSURB() || len(payload) != geo.ForwardPayloadLength() {
		return nil, payload, false
	}
	n := geo.SURBLength()
	user = payload[payloadHeader+n:]
	if payload[flagsOffset]&flagSURB == 0 {
		return nil, user, false
	}
	return payload[payloadHeader : payloadHeader+n], user, true
}

// reply sends a SURB reply carrying body (nil: all zero, an ACK) into the
// network. Every SURB a client makes (client/route) starts at the
// provider that uses it, with a delay for this hop, so the reply enters
// our own pipeline like a client's packet: it is unwrapped, held for its
// delay and forwarded to the first layer, and so leaves at a time that
// does not betray when the message was stored. A SURB that starts at
// another node (a mix of the first layer) is handed to the forwarder for
// that node (mix.Pipeline.Inject); one that starts anywhere else is
// dropped and counted.
func (p *Provider) reply(kind string, surb, body []byte) {
	geo := p.geometry()
	pkt, first, err := sphinx.NewPacketFromSURB(geo, surb, body)
	if err != nil {
		// Lengths come from the geometry; this cannot fail.
		panic("provider: reply packet: " + err.Error())
	}
	if first == p.pipe.ID() {
		err = p.replies.Submit(p.replyCtx, pkt, time.Now())
	} else {
		err = p.pipe.Inject(first, pkt, 0)
	}
	switch {
	case err == nil:
		p.m.replies.WithLabelValues(kind).Inc()
	case errors.Is(err, forward.ErrNoPeer):
		p.m.repliesLost.WithLabelValues(kind, replyFirstHop).Inc()
	default:
		// Draining, or the delay queue is full (counted by the pipeline).
		p.m.repliesLost.WithLabelValues(kind, replyUnavailable).Inc()
	}
}
