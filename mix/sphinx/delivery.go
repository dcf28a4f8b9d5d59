package sphinx

import "errors"

// A Delivery is what a packet's last hop hands to the recipient: a forward
// message's payload body, or a SURB reply (an ACK or an echo) still
// encrypted under its creator's keys, with the SURB ID that names the
// decryption token. Providers store Deliveries in mailboxes and clients
// retrieve them, so its encoding is fixed-length: a stored forward message
// and a stored reply are the same size.
//
//	kind (1) | SURB ID (16) | payload (Geometry.PayloadLength, zero-padded)
//
// kind is 1 for a forward message, 2 for a SURB reply.
type Delivery struct {
	IsSURBReply bool
	SURBID      [SURBIDLength]byte
	// Payload: for a forward message the body after the zero tag
	// (ForwardPayloadLength bytes); for a SURB reply the whole Sphinx payload
	// (PayloadLength bytes).
	Payload []byte
}

const (
	deliveryForward   = 1
	deliverySURBReply = 2
	deliveryHeader    = 1 + SURBIDLength
)

// ErrInvalidDelivery is returned for a delivery encoding that is malformed.
var ErrInvalidDelivery = errors.New("sphinx: invalid delivery")

// DeliveryLength is the length of every encoded Delivery for this geometry.
func (g *Geometry) DeliveryLength() int { return deliveryHeader + g.PayloadLength() }

// NewDelivery is the Delivery of an unwrap Result whose Action is Deliver.
// Its Payload aliases the Result's.
func NewDelivery(r *Result) Delivery {
	return Delivery{IsSURBReply: r.IsSURBReply, SURBID: r.SURBID, Payload: r.Payload}
}

// AppendDelivery appends the fixed-length encoding of d to dst.
func AppendDelivery(dst []byte, g *Geometry, d Delivery) ([]byte, error) {
	want := g.ForwardPayloadLength()
	kind := byte(deliveryForward)
	if d.IsSURBReply {
		want, kind = g.PayloadLength(), deliverySURBReply
	}
	if len(d.Payload) != want {
		return nil, ErrInvalidDelivery
	}
	dst = append(dst, kind)
	dst = append(dst, d.SURBID[:]...)
	dst = append(dst, d.Payload...)
	// Pad a forward body to the length of a reply.
	for range g.PayloadLength() - len(d.Payload) {
		dst = append(dst, 0)
	}
	return dst, nil
}

// ParseDelivery decodes an encoded Delivery. Payload aliases b.
func ParseDelivery(g *Geometry, b []byte) (Delivery, error) {
	if len(b) != g.DeliveryLength() {
		return Delivery{}, ErrInvalidDelivery
	}
	var d Delivery
	copy(d.SURBID[:], b[1:deliveryHeader])
	body := b[deliveryHeader:]
	switch b[0] {
	case deliveryForward:
		n := g.ForwardPayloadLength()
		if !ctIsZero(body[n:]) || d.SURBID != ([SURBIDLength]byte{}) {
			return Delivery{}, ErrInvalidDelivery
		}
		d.Payload = body[:n]
	case deliverySURBReply:
		d.IsSURBReply = true
		d.Payload = body
	default:
		return Delivery{}, ErrInvalidDelivery
	}
	return d, nil
}

// Reserved recipients, understood by every provider. No mailbox has either
// ID: mailbox IDs are hashes of link keys.
//
// The drop recipient (32 zero bytes) marks a drop decoy: the last hop
// discards it without storing or answering it. The echo recipient,
// BLAKE2b-256("chorus echo v1"), names a provider's echo service, which
// answers a packet through the SURB it carries with the same user payload.
var echoRecipient = [RecipientIDLength]byte{
	213, 241, 135, 227, 136, 45, 118, 16, 158, 230, 203, 0, 255, 200, 213, 194,
	173, 82, 223, 230, 55, 255, 179, 35, 213, 83, 104, 117, 210, 45, 18, 192,
}

// DropRecipient returns the reserved recipient ID of drop decoys.
func DropRecipient() [RecipientIDLength]byte { return [RecipientIDLength]byte{} }

// EchoRecipient returns the reserved recipient ID of the echo service.
func EchoRecipient() [RecipientIDLength]byte { return echoRecipient }
