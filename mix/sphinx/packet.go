package sphinx

import (
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x25519"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// PathHop is one hop of the path a packet (or a SURB's reply) takes.
type PathHop struct {
	// ID is the node's ID; the previous hop's NextNodeHop names it.
	ID [NodeIDLength]byte
	// PublicKey is the node's Sphinx key for the epoch the packet travels in.
	PublicKey keys.SphinxPublicKey
	// Commands are the hop's routing commands. An inner hop may carry one
	// NodeDelay (its NextNodeHop is added by packet creation); the last hop
	// carries one Recipient and optionally one SURBReply.
	Commands []Command
}

var errInvalidPath = errors.New("sphinx: invalid path")

// checkPath checks that path fits geo and that its commands are the ones
// Unwrap accepts, so that no packet is built that a hop would drop.
func checkPath(geo *Geometry, path []PathHop) error {
	if len(path) < 1 || len(path) > geo.nrHops {
		return fmt.Errorf("%w: %d hops, geometry allows 1 to %d", errInvalidPath, len(path), geo.nrHops)
	}
	last := len(path) - 1
	for i := range path {
		var delays, recipients, surbs int
		for _, c := range path[i].Commands {
			if nilCommand(c) {
				return fmt.Errorf("%w: hop %d: nil command", errInvalidPath, i)
			}
			switch c.(type) {
			case NodeDelay, *NodeDelay:
				delays++
			case Recipient, *Recipient:
				recipients++
			case SURBReply, *SURBReply:
				surbs++
			case NextNodeHop, *NextNodeHop:
				return fmt.Errorf("%w: hop %d: NextNodeHop is added by packet creation", errInvalidPath, i)
			default:
				return fmt.Errorf("%w: hop %d: unknown command %T", errInvalidPath, i, c)
			}
		}
		if i < last {
			if recipients+surbs > 0 || delays > 1 {
				return fmt.Errorf("%w: hop %d: an inner hop carries at most one NodeDelay", errInvalidPath, i)
			}
		} else if recipients != 1 || surbs > 1 || delays > 0 {
			return fmt.Errorf("%w: hop %d: the last hop carries one Recipient and at most one SURBReply", errInvalidPath, i)
		}
	}
	return nil
}

// nilCommand reports whether c is nil or a nil pointer to a command.
func nilCommand(c Command) bool {
	switch c := c.(type) {
	case nil:
		return true
	case *NodeDelay:
		return c == nil
	case *Recipient:
		return c == nil
	case *SURBReply:
		return c == nil
	case *NextNodeHop:
		return c == nil
	}
	return false
}

// headerKeys holds the per-hop secrets of a header being built.
type headerKeys struct {
	alpha [MaxHops][groupElementLength]byte
	hop   [MaxHops]hopKeys
}

func (k *headerKeys) wipe() { *k = headerKeys{} }

// deriveHops computes every hop's group element and keys from the
// ephemeral scalar x, accumulating the blinding factors (see scalar.go).
// With repeated set it uses Katzenpost's repeated blinding for every hop,
// which tests compare against.
func deriveHops(x *[32]byte, path []PathHop, hk *headerKeys, repeated bool) error {
	var (
		acc    accumulator
		blinds [MaxHops][32]byte
		t, ss  x25519.Key
	)
	defer func() {
		acc.wipe()
		clear(blinds[:])
		clear(t[:])
		clear(ss[:])
	}()
	acc.init(x)
	for i := range path {
		pk := x25519.Key(path[i].PublicKey.Array())
		fast := true
		if i == 0 {
			t = *x
		} else {
			fast = acc.ladderScalar((*[32]byte)(&t)) && !repeated
		}
		if fast {
			x25519.KeyGen((*x25519.Key)(&hk.alpha[i]), &t)
			if !x25519.Shared(&ss, &t, &pk) {
				return fmt.Errorf("%w: hop %d: public key is a low-order point", errInvalidPath, i)
			}
		} else {
			// alpha_i = X25519(b_{i-1}, alpha_{i-1});
			// ss_i = X25519(b_{i-1}, ... X25519(b_0, X25519(x, P_i))).
			prev := x25519.Key(hk.alpha[i-1])
			x25519.Shared((*x25519.Key)(&hk.alpha[i]), (*x25519.Key)(&blinds[i-1]), &prev)
			if !x25519.Shared(&ss, (*x25519.Key)(x), &pk) {
				return fmt.Errorf("%w: hop %d: public key is a low-order point", errInvalidPath, i)
			}
			for j := range i {
				in := ss
				x25519.Shared(&ss, (*x25519.Key)(&blinds[j]), &in)
				clear(in[:])
			}
		}
		hk.hop[i].derive((*[32]byte)(&ss))
		blindingScalar(&blinds[i], &hk.hop[i].blindSeed)
		acc.mul(&blinds[i])
	}
	return nil
}

// assembleHeader writes the header for path into hdr (geo.HeaderLength()
// bytes) from each hop's group element and keys; pad fills the routing
// information of the hops a short path does not use. It is deterministic,
// so tests can rebuild a vector's header from the keys its nodes derive.
func assembleHeader(geo *Geometry, path []PathHop, hk *headerKeys, pad []byte, hdr []byte) {
	const p = perHopRoutingInfoLength
	var (
		n        = len(path)
		ri       = geo.RoutingInfoLength()
		ksLen    = ri + p
		riOff    = adLength + groupElementLength
		macOff   = riOff + ri
		beta     = hdr[riOff:macOff]
		streams  = make([]byte, n*ksLen)
		mac      [macLength]byte
		fragment [p]byte
	)
	defer func() {
		clear(streams)
		clear(mac[:])
		clear(fragment[:])
	}()

	// Each hop's keystream over beta | p zero bytes, and the filler: the
	// bytes that the hops before i leave at the end of beta, as hop i's
	// decryption sees them. filler(i) = ks_i[ri-i·p:] with its first i·p
	// bytes XORed with filler(i-1); it is kept in place in streams.
	ks := func(i int) []byte { return streams[i*ksLen : (i+1)*ksLen] }
	filler := func(i int) []byte { return ks(i)[ri-i*p:] }
	for i := range n {
		newStream(&hk.hop[i].streamKey, &hk.hop[i].iv).XORKeyStream(ks(i), ks(i))
		if i > 0 {
			prev := filler(i - 1)
			f := filler(i)
			for j := range prev {
				f[j] ^= prev[j]
			}
		}
	}

	// Build beta from the last hop back: hop i's part is beta[i·p:], its
	// commands followed by the parts of the later hops (or the padding).
	copy(beta[n*p:], pad)
	for i := n - 1; i >= 0; i-- {
		cmds := appendCommands(fragment[:0], path[i].Commands)
		if i < n-1 {
			cmds = NextNodeHop{ID: path[i+1].ID, MAC: mac}.appendTo(cmds)
		}
		if len(cmds) > p {
			panic("sphinx: routing commands overflow a hop") // checkPath prevents this
		}
		clear(fragment[len(cmds):])
		copy(beta[i*p:], fragment[:])
		part := beta[i*p:]
		stream := ks(i)[:ri-i*p]
		for j := range part {
			part[j] ^= stream[j]
		}
		var tail []byte
		if i > 0 {
			tail = filler(i - 1)
		}
		headerMAC(&mac, &hk.hop[i].macKey, v0AD[:], hk.alpha[i][:], part, tail)
	}
	copy(hdr[:adLength], v0AD[:])
	copy(hdr[adLength:riOff], hk.alpha[0][:])
	copy(hdr[macOff:], mac[:])
}

var v0AD = [adLength]byte{0x00, 0x00}

// createHeader draws the ephemeral key and the padding from rand (in that
// order, as Katzenpost does) and writes the header into hdr.
func createHeader(rand io.Reader, geo *Geometry, path []PathHop, hk *headerKeys, hdr []byte) error {
	var x [32]byte
	defer clear(x[:])
	if _, err := io.ReadFull(rand, x[:]); err != nil {
		return fmt.Errorf("sphinx: read randomness: %w", err)
	}
	var pad []byte
	if skipped := geo.nrHops - len(path); skipped > 0 {
		pad = make([]byte, skipped*perHopRoutingInfoLength)
		if _, err := io.ReadFull(rand, pad); err != nil {
			return fmt.Errorf("sphinx: read randomness: %w", err)
		}
	}
	if err := deriveHops(&x, path, hk, false); err != nil {
		return err
	}
	assembleHeader(geo, path, hk, pad, hdr)
	return nil
}

// NewPacket creates a forward packet that carries payload along path. The
// payload is at most geo.ForwardPayloadLength() bytes; a shorter one is
// padded with zeros, and the last hop delivers the full padded body.
// Randomness (the ephemeral key, then the routing padding of a short path)
// comes from rand, so a deterministic reader gives a deterministic packet.
func NewPacket(rand io.Reader, geo *Geometry, path []PathHop, payload []byte) ([]byte, error) {
	geo.mustBeValid()
	if len(payload) > geo.ForwardPayloadLength() {
		return nil, fmt.Errorf("sphinx: payload of %d bytes exceeds the geometry's %d", len(payload), geo.ForwardPayloadLength())
	}
	if err := checkPath(geo, path); err != nil {
		return nil, err
	}
	hdrLen := geo.HeaderLength()
	pkt := make([]byte, geo.PacketLength())
	var hk headerKeys
	defer hk.wipe()
	if err := createHeader(rand, geo, path, &hk, pkt[:hdrLen]); err != nil {
		return nil, err
	}
	body := pkt[hdrLen:]
	copy(body[PayloadTagLength:], payload)
	for i := len(path) - 1; i >= 0; i-- {
		sprpEncrypt(&hk.hop[i].sprpKey, &hk.hop[i].iv, body)
	}
	return pkt, nil
}
