package link

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
	"github.com/flynn/noise"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// protocolName names this version of the link protocol. It starts the Noise
// prologue, so peers speaking another version fail the first message.
const protocolName = "chorus-link-v1"

// Handshake message sizes. They are fixed, so the handshake needs no length
// prefixes: each side reads exactly the next message.
//
//	msg1  -> e, [ML-KEM public key]                   32 + 1184+16      = 1232
//	msg2  <- e, ee, s, es, [ML-KEM ciphertext]        32 + 32+16 + 1088+16 = 1184
//	msg3  -> s, se, psk, []                           32+16 + 16        = 64
//
// Every payload is encrypted: with psk3 the ephemeral key is mixed into the
// key from the first message on.
const (
	msg1Length = 32 + mlkem768.PublicKeySize + tagLength
	msg2Length = 32 + 32 + tagLength + mlkem768.CiphertextSize + tagLength
	msg3Length = 32 + tagLength + tagLength
)

// errHandshake is the one error for a handshake message that is not what
// the protocol expects, whatever the cause.
var errHandshake = errors.New("link: handshake failed")

var cipherSuite = noise.NewCipherSuite(dh25519{}, noise.CipherChaChaPoly, noise.HashBLAKE2b)

// prologue binds the protocol version and the packet length into the
// handshake transcript: peers that disagree on either fail at once, instead
// of exchanging frames the other cannot parse.
func prologue(packetLength int) []byte {
	p := make([]byte, len(protocolName)+4)
	copy(p, protocolName)
	binary.BigEndian.PutUint32(p[len(protocolName):], uint32(packetLength))
	return p
}

// handshake is one side of Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b with an
// ML-KEM-768 exchange in the payloads of messages 1 and 2, whose shared
// secret becomes the PSK mixed in at the end of message 3. It is a pure state
// machine: the caller moves messages. The methods must be called in protocol
// order; any error ends the handshake, and wipe must be called in every case.
type handshake struct {
	hs         *noise.HandshakeState
	initiator  bool
	rekeyEvery uint64

	kemSeed [mlkem768.KeySeedSize]byte
	kemPriv *mlkem768.PrivateKey // initiator, between messages 1 and 2
	psk     [mlkem768.SharedKeySize]byte
	peer    keys.LinkPublicKey
}

func newHandshake(priv *keys.LinkPrivateKey, packetLength int, initiator bool, rekeyEvery uint64) (*handshake, error) {
	pub := priv.Public().Array()
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:           cipherSuite,
		Random:                rand.Reader,
		Pattern:               noise.HandshakeXX,
		Initiator:             initiator,
		Prologue:              prologue(packetLength),
		PresharedKeyPlacement: 3,
		StaticKeypair:         noise.DHKey{Private: priv.Scalar()[:], Public: pub[:]},
	})
	if err != nil {
		return nil, err
	}
	return &handshake{hs: hs, initiator: initiator, rekeyEvery: rekeyEvery}, nil
}

// writeMsg1 (initiator) makes an ephemeral ML-KEM key pair and sends its
// public key.
func (h *handshake) writeMsg1() ([]byte, error) {
	if _, err := io.ReadFull(rand.Reader, h.kemSeed[:]); err != nil {
		return nil, err
	}
	pk, sk := mlkem768.NewKeyFromSeed(h.kemSeed[:])
	clear(h.kemSeed[:])
	h.kemPriv = sk
	var pkBytes [mlkem768.PublicKeySize]byte
	pk.Pack(pkBytes[:])
	msg, _, _, err := h.hs.WriteMessage(make([]byte, 0, msg1Length), pkBytes[:])
	if err != nil {
		return nil, err
	}
	return msg, nil
}

// readMsg1 (responder) takes the initiator's ML-KEM public key.
func (h *handshake) readMsg1(msg []byte) (*mlkem768.PublicKey, error) {
	if len(msg) != msg1Length {
		return nil, errHandshake
	}
	payload, _, _, err := h.hs.ReadMessage(nil, msg)
	if err != nil || len(payload) != mlkem768.PublicKeySize {
		return nil, errHandshake
	}
	pk := new(mlkem768.PublicKey)
	if err := pk.Unpack(payload); err != nil {
		return nil, errHandshake
	}
	return pk, nil
}

// writeMsg2 (responder) encapsulates to the initiator's ML-KEM key, sets the
// shared secret as the PSK and sends the ciphertext with its static key.
func (h *handshake) writeMsg2(pk *mlkem768.PublicKey) ([]byte, error) {
	var seed [mlkem768.EncapsulationSeedSize]byte
	defer clear(seed[:])
	if _, err := io.ReadFull(rand.Reader, seed[:]); err != nil {
		return nil, err
	}
	var ct [mlkem768.CiphertextSize]byte
	pk.EncapsulateTo(ct[:], h.psk[:], seed[:])
	if err := h.hs.SetPresharedKey(h.psk[:]); err != nil {
		return nil, err
	}
	msg, _, _, err := h.hs.WriteMessage(make([]byte, 0, msg2Length), ct[:])
	if err != nil {
		return nil, err
	}
	return msg, nil
}

// readMsg2 (initiator) takes the responder's static key and ML-KEM
// ciphertext, and sets the decapsulated secret as the PSK. It returns the
// responder's static key, which the caller checks before writeMsg3 reveals
// the initiator's own.
func (h *handshake) readMsg2(msg []byte) (keys.LinkPublicKey, error) {
	if len(msg) != msg2Length || h.kemPriv == nil {
		return keys.LinkPublicKey{}, errHandshake
	}
	payload, _, _, err := h.hs.ReadMessage(nil, msg)
	if err != nil || len(payload) != mlkem768.CiphertextSize {
		return keys.LinkPublicKey{}, errHandshake
	}
	h.kemPriv.DecapsulateTo(h.psk[:], payload)
	h.wipeKEM()
	if err := h.hs.SetPresharedKey(h.psk[:]); err != nil {
		return keys.LinkPublicKey{}, errHandshake
	}
	peer, err := keys.NewLinkPublicKey(h.hs.PeerStatic())
	if err != nil {
		return keys.LinkPublicKey{}, errHandshake
	}
	h.peer = peer
	return peer, nil
}

// writeMsg3 (initiator) sends the initiator's static key and completes the
// handshake.
func (h *handshake) writeMsg3() ([]byte, *cipherState, *cipherState, error) {
	msg, c1, c2, err := h.hs.WriteMessage(make([]byte, 0, msg3Length), nil)
	if err != nil || c1 == nil || c2 == nil {
		return nil, nil, nil, errHandshake
	}
	send, recv := h.split(c1, c2)
	return msg, send, recv, nil
}

// readMsg3 (responder) takes the initiator's static key and completes the
// handshake. The caller then decides whether the key is welcome.
func (h *handshake) readMsg3(msg []byte) (keys.LinkPublicKey, *cipherState, *cipherState, error) {
	if len(msg) != msg3Length {
		return keys.LinkPublicKey{}, nil, nil, errHandshake
	}
	payload, c1, c2, err := h.hs.ReadMessage(nil, msg)
	if err != nil || len(payload) != 0 || c1 == nil || c2 == nil {
		return keys.LinkPublicKey{}, nil, nil, errHandshake
	}
	peer, err := keys.NewLinkPublicKey(h.hs.PeerStatic())
	if err != nil {
		return keys.LinkPublicKey{}, nil, nil, errHandshake
	}
	h.peer = peer
	send, recv := h.split(c1, c2)
	return peer, send, recv, nil
}

// split turns Noise's two CipherStates (c1 initiator→responder, c2 the
// reverse) into our send and receive states.
func (h *handshake) split(c1, c2 *noise.CipherState) (send, recv *cipherState) {
	k1, k2 := c1.UnsafeKey(), c2.UnsafeKey()
	defer clear(k1[:])
	defer clear(k2[:])
	if h.initiator {
		return newCipherState(k1, h.rekeyEvery), newCipherState(k2, h.rekeyEvery)
	}
	return newCipherState(k2, h.rekeyEvery), newCipherState(k1, h.rekeyEvery)
}

func (h *handshake) wipeKEM() {
	clear(h.kemSeed[:])
	if h.kemPriv != nil {
		// circl keeps the expanded secret vector behind a pointer it does
		// not let us reach; we erase the rest and drop the reference.
		*h.kemPriv = mlkem768.PrivateKey{}
		h.kemPriv = nil
	}
}

// wipe erases what the handshake holds: the KEM secrets, the PSK, our
// ephemeral X25519 key and the transcript hash. flynn/noise keeps its
// chaining key and a copy of the PSK in fields we cannot reach; they are
// dropped with the state.
func (h *handshake) wipe() {
	h.wipeKEM()
	clear(h.psk[:])
	if h.hs != nil {
		clear(h.hs.LocalEphemeral().Private)
		clear(h.hs.ChannelBinding())
		h.hs = nil
	}
}
