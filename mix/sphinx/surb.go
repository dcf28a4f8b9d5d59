package sphinx

import (
	"errors"
	"fmt"
	"io"
)

// A SURB (single-use reply block) lets its recipient send one reply to the
// SURB's creator without learning where the creator is. Its layout, as in
// Katzenpost:
//
//	header (HeaderLength) | first hop ID (32) | AEZ key (48) | AEZ nonce (16)
//
// The creator keeps the decryption token ("SURB keys"): the payload key
// material of each hop, last hop first, then the key material in the SURB,
// 64 bytes each.

var errInvalidSURBKeys = errors.New("sphinx: invalid SURB keys")

// NewSURB creates a SURB for a reply along path, and the decryption token
// its creator keeps to read the reply (DecryptSURBPayload). The last hop
// normally carries the creator's Recipient and a SURBReply with an ID
// that finds the token again. Randomness (the reply's payload key, the
// ephemeral key, the routing padding) comes from rand, in that order.
func NewSURB(rand io.Reader, geo *Geometry, path []PathHop) (surb, surbKeys []byte, err error) {
	geo.mustBeValid()
	if err := checkPath(geo, path); err != nil {
		return nil, nil, err
	}
	var payloadKey [SURBKeyMaterialLength]byte
	defer clear(payloadKey[:])
	if _, err := io.ReadFull(rand, payloadKey[:]); err != nil {
		return nil, nil, fmt.Errorf("sphinx: read randomness: %w", err)
	}
	hdrLen := geo.HeaderLength()
	surb = make([]byte, geo.SURBLength())
	var hk headerKeys
	defer hk.wipe()
	if err := createHeader(rand, geo, path, &hk, surb[:hdrLen]); err != nil {
		return nil, nil, err
	}
	copy(surb[hdrLen:], path[0].ID[:])
	copy(surb[hdrLen+NodeIDLength:], payloadKey[:])

	surbKeys = make([]byte, 0, geo.SURBKeysLength(len(path)))
	for i := len(path) - 1; i >= 0; i-- {
		surbKeys = append(surbKeys, hk.hop[i].sprpKey[:]...)
		surbKeys = append(surbKeys, hk.hop[i].iv[:]...)
	}
	surbKeys = append(surbKeys, payloadKey[:]...)
	return surb, surbKeys, nil
}

// NewPacketFromSURB creates the reply packet for surb carrying payload, and
// returns it with the node to send it to. The payload is at most
// geo.ForwardPayloadLength() bytes; a shorter one is padded with zeros.
// Nothing in it is random.
func NewPacketFromSURB(geo *Geometry, surb, payload []byte) (pkt []byte, firstHop [NodeIDLength]byte, err error) {
	geo.mustBeValid()
	hdrLen := geo.HeaderLength()
	if len(surb) != geo.SURBLength() {
		return nil, firstHop, fmt.Errorf("sphinx: SURB of %d bytes, geometry needs %d", len(surb), geo.SURBLength())
	}
	if len(payload) > geo.ForwardPayloadLength() {
		return nil, firstHop, fmt.Errorf("sphinx: payload of %d bytes exceeds the geometry's %d", len(payload), geo.ForwardPayloadLength())
	}
	var (
		key [sprpKeyLength]byte
		iv  [sprpIVLength]byte
	)
	defer func() {
		clear(key[:])
		clear(iv[:])
	}()
	copy(firstHop[:], surb[hdrLen:])
	copy(key[:], surb[hdrLen+NodeIDLength:])
	copy(iv[:], surb[hdrLen+NodeIDLength+sprpKeyLength:])

	pkt = make([]byte, geo.PacketLength())
	copy(pkt, surb[:hdrLen])
	body := pkt[hdrLen:]
	copy(body[PayloadTagLength:], payload)
	sprpEncrypt(&key, &iv, body)
	return pkt, firstHop, nil
}

// DecryptSURBPayload decrypts the payload of a SURB reply (Result.Payload
// at the last hop: geo.PayloadLength() bytes, tag included) with the
// decryption token NewSURB returned, and returns the body the replier sent
// (padded to geo.ForwardPayloadLength()). payload is not modified. A
// payload that does not decrypt to the zero tag gives ErrInvalidPacket.
// The token is single-use: the caller should wipe it afterwards.
func DecryptSURBPayload(geo *Geometry, payload, surbKeys []byte) ([]byte, error) {
	geo.mustBeValid()
	n := len(surbKeys) / SURBKeyMaterialLength
	if len(surbKeys)%SURBKeyMaterialLength != 0 || n < 2 || n > geo.nrHops+1 {
		return nil, errInvalidSURBKeys
	}
	if len(payload) != geo.PayloadLength() {
		return nil, ErrInvalidPacket
	}
	var (
		key [sprpKeyLength]byte
		iv  [sprpIVLength]byte
	)
	defer func() {
		clear(key[:])
		clear(iv[:])
	}()
	b := append([]byte(nil), payload...)
	for i := range n {
		k := surbKeys[i*SURBKeyMaterialLength:]
		copy(key[:], k[:sprpKeyLength])
		copy(iv[:], k[sprpKeyLength:SURBKeyMaterialLength])
		if i < n-1 {
			// Undo the decryption a hop applied.
			sprpEncrypt(&key, &iv, b)
		} else if !sprpDecrypt(&key, &iv, b) {
			return nil, ErrInvalidPacket
		}
	}
	if !ctIsZero(b[:PayloadTagLength]) {
		clear(b)
		return nil, ErrInvalidPacket
	}
	return b[PayloadTagLength:], nil
}
