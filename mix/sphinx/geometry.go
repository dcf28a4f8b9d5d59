package sphinx

import (
	"errors"
	"fmt"
)

// Sizes fixed by the X25519 parameterisation (DESIGN §5.1). They do not
// depend on the geometry.
const (
	// NodeIDLength is the length of a node ID (NextNodeHop, SURB first hop).
	NodeIDLength = 32
	// RecipientIDLength is the length of a Recipient command's ID.
	RecipientIDLength = 32
	// SURBIDLength is the length of a SURBReply command's ID.
	SURBIDLength = 16
	// ReplayTagLength is the length of Result.ReplayTag.
	ReplayTagLength = 32
	// PayloadTagLength is the length of the all-zero tag that starts every
	// decrypted payload.
	PayloadTagLength = 32
	// SURBKeyMaterialLength is the payload key material carried per layer in
	// a SURB and its decryption token: a 48-byte AEZ key and a 16-byte nonce.
	SURBKeyMaterialLength = sprpKeyLength + sprpIVLength

	// MaxHops is the largest NrHops a Geometry may have.
	MaxHops = 16
	// MaxUserPayloadLength is the largest user payload a Geometry may have.
	MaxUserPayloadLength = 1 << 20

	adLength           = 2
	groupElementLength = 32
	macLength          = 32
	sprpKeyLength      = 48
	sprpIVLength       = 16

	nextNodeHopLength = 1 + NodeIDLength + macLength // 65
	recipientLength   = 1 + RecipientIDLength        // 33
	surbReplyLength   = 1 + SURBIDLength             // 17
	nodeDelayLength   = 1 + 4                        // 5

	// perHopRoutingInfoLength is Katzenpost's NIKE formula: room for a
	// NextNodeHop plus a SURBReply. It bounds both kinds of hop: an inner
	// hop's NodeDelay+NextNodeHop (70 bytes) and a last hop's
	// Recipient+SURBReply (50 bytes).
	perHopRoutingInfoLength = nextNodeHopLength + surbReplyLength // 82

	// surbPlaintextHeaderLength is the flags and reserved bytes a client
	// puts before the SURB in a forward payload (Katzenpost's
	// BlockSphinxPlaintext header).
	surbPlaintextHeaderLength = 2

	maxRoutingInfoLength = MaxHops * perHopRoutingInfoLength
	maxHeaderLength      = adLength + groupElementLength + maxRoutingInfoLength + macLength
)

// Geometry is the shape of every packet on a network: how many hops a
// header can carry and how long the payload is. It is a network parameter
// (carried in the consensus document); make one with NewGeometry or
// DefaultGeometry. A Geometry is immutable and safe for concurrent use.
//
// The lengths, for h hops and a user payload of u bytes:
//
//	PerHopRoutingInfoLength = 82                          (NextNodeHop 65 + SURBReply 17)
//	RoutingInfoLength       = 82·h
//	HeaderLength            = 2 + 32 + 82·h + 32           (AD, alpha, beta, gamma)
//	SURBLength              = HeaderLength + 32 + 64       (header, first hop, payload key)
//	ForwardPayloadLength    = u, or 2 + SURBLength + u with room for a SURB
//	PayloadLength           = 32 + ForwardPayloadLength    (zero tag, body)
//	PacketLength            = HeaderLength + PayloadLength
type Geometry struct {
	nrHops         int
	userPayloadLen int
	withSURB       bool
}

var errGeometry = errors.New("sphinx: invalid geometry")

// NewGeometry returns the geometry for paths of up to hops hops carrying a
// user payload of userPayload bytes; withSURB leaves room in the forward
// payload for the 2 flag bytes and one SURB before the user payload.
func NewGeometry(hops, userPayload int, withSURB bool) (*Geometry, error) {
	if hops < 1 || hops > MaxHops {
		return nil, fmt.Errorf("%w: %d hops, want 1 to %d", errGeometry, hops, MaxHops)
	}
	if userPayload < 1 || userPayload > MaxUserPayloadLength {
		return nil, fmt.Errorf("%w: user payload of %d bytes, want 1 to %d", errGeometry, userPayload, MaxUserPayloadLength)
	}
	return &Geometry{nrHops: hops, userPayloadLen: userPayload, withSURB: withSURB}, nil
}

// Default geometry parameters (DESIGN §5.1).
const (
	DefaultHops              = 5
	DefaultUserPayloadLength = 2000
)

// DefaultGeometry returns the default network geometry: 5 hops and a
// 2000-byte user payload with room for one SURB, which gives 3082-byte
// packets.
func DefaultGeometry() *Geometry {
	return &Geometry{nrHops: DefaultHops, userPayloadLen: DefaultUserPayloadLength, withSURB: true}
}

// NrHops is the largest number of hops a packet can have.
func (g *Geometry) NrHops() int { return g.nrHops }

// UserPayloadLength is the length of the user payload.
func (g *Geometry) UserPayloadLength() int { return g.userPayloadLen }

// WithSURB reports whether the forward payload has room for a SURB.
func (g *Geometry) WithSURB() bool { return g.withSURB }

// PerHopRoutingInfoLength is the length of one hop's routing commands.
func (g *Geometry) PerHopRoutingInfoLength() int { return perHopRoutingInfoLength }

// RoutingInfoLength is the length of the header's routing information
// (beta).
func (g *Geometry) RoutingInfoLength() int { return g.nrHops * perHopRoutingInfoLength }

// HeaderLength is the length of the Sphinx header.
func (g *Geometry) HeaderLength() int {
	return adLength + groupElementLength + g.RoutingInfoLength() + macLength
}

// SURBLength is the length of a SURB: a header, the first hop's ID and the
// payload key material.
func (g *Geometry) SURBLength() int {
	return g.HeaderLength() + NodeIDLength + SURBKeyMaterialLength
}

// ForwardPayloadLength is the length of the payload body, the part a
// sender provides and the last hop delivers: the user payload, preceded
// with room for a SURB (2 flag bytes and the SURB) if WithSURB.
func (g *Geometry) ForwardPayloadLength() int {
	if g.withSURB {
		return surbPlaintextHeaderLength + g.SURBLength() + g.userPayloadLen
	}
	return g.userPayloadLen
}

// PayloadLength is the length of the Sphinx payload: the 32-byte tag and
// the body.
func (g *Geometry) PayloadLength() int { return PayloadTagLength + g.ForwardPayloadLength() }

// PacketLength is the length of every packet.
func (g *Geometry) PacketLength() int { return g.HeaderLength() + g.PayloadLength() }

// SURBKeysLength is the length of the decryption token NewSURB returns for
// a path of hops hops.
func (g *Geometry) SURBKeysLength(hops int) int { return (hops + 1) * SURBKeyMaterialLength }

// Equal reports whether g and o describe the same packets.
func (g *Geometry) Equal(o *Geometry) bool { return *g == *o }

// String describes the geometry; it holds nothing secret.
func (g *Geometry) String() string {
	return fmt.Sprintf("sphinx geometry: %d hops, %d-byte user payload, SURB room %t, %d-byte packets",
		g.nrHops, g.userPayloadLen, g.withSURB, g.PacketLength())
}

// valid reports whether g came from NewGeometry or DefaultGeometry.
func (g *Geometry) valid() bool {
	return g != nil && g.nrHops >= 1 && g.nrHops <= MaxHops &&
		g.userPayloadLen >= 1 && g.userPayloadLen <= MaxUserPayloadLength
}

// mustBeValid panics on a nil or zero Geometry: that is a programming
// error, not bad input.
func (g *Geometry) mustBeValid() {
	if !g.valid() {
		panic("sphinx: use of a nil or zero Geometry")
	}
}
