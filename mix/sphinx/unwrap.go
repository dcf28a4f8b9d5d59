package sphinx

import (
	"crypto/subtle"
	"errors"
	"time"

	"github.com/cloudflare/circl/dh/x25519"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// ErrInvalidPacket is the one error Unwrap returns, whatever was wrong with
// the packet: wrong length, unknown AD, bad MAC, bad routing commands, bad
// payload tag. A hop that drops a packet learns nothing more, and tells an
// attacker nothing more.
var ErrInvalidPacket = errors.New("sphinx: invalid packet")

// Action is what a hop must do with a packet it has unwrapped.
type Action uint8

const (
	// Forward: send the packet, transformed in place, to Result.NextHop
	// after Result.Delay.
	Forward Action = 1 + iota
	// Deliver: the packet ends here; Result.Payload goes to
	// Result.Recipient.
	Deliver
)

func (a Action) String() string {
	switch a {
	case Forward:
		return "forward"
	case Deliver:
		return "deliver"
	}
	return "invalid"
}

// Result is what Unwrap learned from one hop's layer of a packet.
type Result struct {
	// Action says which of the fields below apply.
	Action Action

	// ReplayTag is SHA-512/256 of the packet's group element. A hop must
	// drop a packet whose tag it has seen before under the same key.
	ReplayTag [ReplayTagLength]byte

	// NextHop and Delay (Forward): the node to send the packet to and how
	// long to hold it first (zero if the hop carried no NodeDelay).
	NextHop [NodeIDLength]byte
	Delay   time.Duration

	// Recipient (Deliver): the mailbox the payload is for.
	Recipient [RecipientIDLength]byte
	// IsSURBReply (Deliver) is set if the packet is a reply sent with a
	// SURB; SURBID then names the SURB, and Payload is the whole Sphinx
	// payload, tag included, still encrypted under the SURB creator's keys
	// (see DecryptSURBPayload).
	IsSURBReply bool
	SURBID      [SURBIDLength]byte
	// Payload (Deliver) is the payload body with its zero tag removed, or
	// the whole Sphinx payload of a SURB reply. It aliases the packet
	// passed to Unwrap.
	Payload []byte

	// commands is this hop's decrypted routing-command block.
	commands [perHopRoutingInfoLength]byte
}

// Unwrap removes the layer of pkt that key can open. pkt is processed in
// place: for a Forward result it then holds the packet for the next hop;
// for a Deliver result, Result.Payload points into it.
//
// Every failure returns ErrInvalidPacket. If the header MAC does not
// verify (the packet is not for this key), pkt is left unchanged, so the
// caller may try another key, such as the previous epoch's; after any other
// failure pkt's contents are unspecified.
//
// Unwrap checks the header MAC after one X25519 ladder and before any other
// public-key work; only a packet to be forwarded costs a second ladder.
func Unwrap(geo *Geometry, key *keys.SphinxPrivateKey, pkt []byte) (*Result, error) {
	res := new(Result)
	if err := UnwrapInto(geo, key, pkt, res); err != nil {
		return nil, err
	}
	return res, nil
}

// UnwrapInto is Unwrap writing into a caller-owned Result, so that a hop
// can unwrap without allocating. On failure res is zeroed.
func UnwrapInto(geo *Geometry, key *keys.SphinxPrivateKey, pkt []byte, res *Result) error {
	return UnwrapChecked(geo, key, pkt, res, nil, 0)
}

// ReplayFilter records the replay tags seen under each epoch's key (see
// mix/replay). TestAndSet reports whether tag was seen before and records
// it; an error means the tag cannot be recorded and the packet must be
// refused.
type ReplayFilter interface {
	TestAndSet(epoch uint64, tag *[ReplayTagLength]byte) (seen bool, err error)
}

// Errors of UnwrapChecked besides ErrInvalidPacket. They are for the
// node's own accounting; a node tells a peer nothing either way.
var (
	// ErrReplay: the packet's replay tag was seen before under this key.
	ErrReplay = errors.New("sphinx: replayed packet")
	// ErrReplayRefused: the replay filter could not record the tag.
	ErrReplayRefused = errors.New("sphinx: replay filter refused the packet")
)

// UnwrapChecked is UnwrapInto with the replay check done inside: once the
// MAC has verified, and before any other work (the payload decryption and
// the blinding ladder), the tag goes to filter under epoch. A replayed
// packet thus costs one ladder, like a packet with a bad MAC, and pkt is
// left unchanged. A nil filter skips the check.
func UnwrapChecked(geo *Geometry, key *keys.SphinxPrivateKey, pkt []byte, res *Result, filter ReplayFilter, epoch uint64) error {
	geo.mustBeValid()
	*res = Result{}
	if err := unwrap(geo, key, pkt, res, filter, epoch); err != nil {
		*res = Result{}
		return err
	}
	return nil
}

func unwrap(geo *Geometry, key *keys.SphinxPrivateKey, pkt []byte, res *Result, filter ReplayFilter, epoch uint64) error {
	const p = perHopRoutingInfoLength
	var (
		ri         = geo.RoutingInfoLength()
		alphaOff   = adLength
		riOff      = alphaOff + groupElementLength
		macOff     = riOff + ri
		payloadOff = macOff + macLength
	)
	if len(pkt) != geo.PacketLength() || pkt[0] != v0AD[0] || pkt[1] != v0AD[1] {
		return ErrInvalidPacket
	}
	alpha := (*x25519.Key)(pkt[alphaOff:riOff])

	// One ladder for the shared secret, then only the MAC key.
	var (
		ss  x25519.Key
		d   kdf
		mac [macLength]byte
	)
	defer d.wipe()
	ok := x25519.Shared(&ss, (*x25519.Key)(key.Scalar()), alpha)
	d.init((*[32]byte)(&ss))
	clear(ss[:])
	if !ok {
		return ErrInvalidPacket
	}
	headerMAC(&mac, d.next(), pkt[:macOff])
	if subtle.ConstantTimeCompare(mac[:], pkt[macOff:payloadOff]) != 1 {
		return ErrInvalidPacket
	}

	// The header is authentic: from here on pkt is modified. (iv escapes
	// into the CTR stream, so it is declared here, off the bad-MAC path.)
	var (
		stream [32]byte
		iv     [sprpIVLength]byte
		sprp   [sprpKeyLength]byte
	)
	defer func() {
		clear(stream[:])
		clear(iv[:])
		clear(sprp[:])
	}()
	res.ReplayTag = replayTag(alpha[:])
	if filter != nil {
		switch seen, err := filter.TestAndSet(epoch, &res.ReplayTag); {
		case err != nil:
			return ErrReplayRefused
		case seen:
			return ErrReplay
		}
	}
	stream = *d.next()
	t := d.next()
	copy(iv[:], t[:sprpIVLength])
	copy(sprp[:16], t[sprpIVLength:])
	copy(sprp[16:], d.next()[:])

	// Decrypt beta | p zero bytes: the first p bytes are this hop's
	// commands, the rest the next hop's beta, shifted into place.
	beta := pkt[riOff:macOff]
	s := newStream(&stream, &iv)
	s.XORKeyStream(res.commands[:], beta[:p])
	copy(beta, beta[p:])
	clear(beta[ri-p:])
	s.XORKeyStream(beta, beta)

	var cmds hopCommands
	if !cmds.decodeHop(res.commands[:]) {
		return ErrInvalidPacket
	}

	payload := pkt[payloadOff:]
	if !sprpDecrypt(&sprp, &iv, payload) {
		return ErrInvalidPacket
	}

	if cmds.next == nil {
		res.Action = Deliver
		res.Recipient = *cmds.recipient
		if cmds.surb != nil {
			res.IsSURBReply = true
			res.SURBID = *cmds.surb
			res.Payload = payload
			return nil
		}
		if !ctIsZero(payload[:PayloadTagLength]) {
			return ErrInvalidPacket
		}
		res.Payload = payload[PayloadTagLength:]
		return nil
	}

	// Forward: blind alpha with the scalar from the last KDF block. The
	// ladder cannot fail: alpha passed the low-order check above.
	var (
		b       [32]byte
		blinded x25519.Key
	)
	blindingScalar(&b, d.next())
	x25519.Shared(&blinded, (*x25519.Key)(&b), alpha)
	clear(b[:])
	*alpha = blinded
	copy(pkt[macOff:payloadOff], cmds.next[NodeIDLength:])
	res.Action = Forward
	copy(res.NextHop[:], cmds.next[:NodeIDLength])
	if cmds.hasDelay {
		res.Delay = time.Duration(cmds.delay) * time.Millisecond
	}
	return nil
}
