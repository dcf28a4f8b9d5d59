package message

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
)

// DefaultMaxMessageSize is the largest message Split and the Reassembler
// accept unless configured otherwise (DESIGN §5.6).
const DefaultMaxMessageSize = 1 << 20

// MessageIDSize is the size of a message ID.
const MessageIDSize = 16

// Layout of a sealed fragment (see the package documentation):
//
//	sealed    = enc (32) || AEAD(plaintext) || tag (16)
//	plaintext = version (1) || message ID (16) || index (4) || count (4)
//	            || total (4) || body length (4) || body || zero padding
//
// All integers are big-endian.
const (
	encSize        = KeySize
	tagSize        = 16 // ChaCha20-Poly1305
	fragmentHeader = 1 + MessageIDSize + 4 + 4 + 4 + 4
	fragmentV1     = 1

	// SealOverhead is how many bytes of a sealed fragment are not message
	// body: FragmentCapacity(n) == n - SealOverhead.
	SealOverhead = encSize + tagSize + fragmentHeader
)

// Errors from Split and Seal: the caller asked for something impossible.
var (
	// ErrTooLarge: the message is longer than the maximum message size.
	ErrTooLarge = errors.New("message: message too large")
	// ErrCapacity: the fragment space is too small to carry any body, or a
	// fragment's body does not fit the space given.
	ErrCapacity = errors.New("message: fragment does not fit")
)

// MessageID names one message. It is random, so IDs from different senders
// do not collide, and it travels only inside the encryption.
type MessageID [MessageIDSize]byte

// NewMessageID draws a random message ID from rand.
func NewMessageID(rand io.Reader) (MessageID, error) {
	var id MessageID
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return id, fmt.Errorf("draw message id: %w", err)
	}
	return id, nil
}

// MarshalText encodes the ID in hex, for the local API.
func (id MessageID) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(id[:])), nil
}

// UnmarshalText decodes a hex ID.
func (id *MessageID) UnmarshalText(b []byte) error {
	if len(b) != 2*MessageIDSize {
		return errors.New("message: malformed message id")
	}
	if _, err := hex.Decode(id[:], b); err != nil {
		return errors.New("message: malformed message id")
	}
	return nil
}

// String returns the ID in hex.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// Fragment is one piece of a message, before sealing or after opening.
type Fragment struct {
	// ID names the message the fragment belongs to.
	ID MessageID
	// Index is the fragment's place in the message, from 0 to Count-1.
	Index uint32
	// Count is the number of fragments in the message, at least 1.
	Count uint32
	// Total is the length of the whole message.
	Total uint32
	// Body is the fragment's part of the message.
	Body []byte
}

// FragmentCapacity returns how many message bytes fit in one fragment that
// is sealed into sealedLength bytes, or 0 if none fit. The client computes
// sealedLength from the Sphinx geometry: the user payload length less what
// it reserves for itself.
func FragmentCapacity(sealedLength int) int {
	if sealedLength <= SealOverhead {
		return 0
	}
	return sealedLength - SealOverhead
}

// Split cuts msg into fragments of at most capacity body bytes each, under
// a fresh random message ID drawn from rand. Every fragment but the last is
// full; an empty message is one empty fragment. maxSize bounds the message
// (0 means DefaultMaxMessageSize). The fragments' bodies share msg's memory.
func Split(rand io.Reader, msg []byte, capacity, maxSize int) ([]Fragment, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	if len(msg) > maxSize || uint64(len(msg)) > math.MaxUint32 {
		return nil, ErrTooLarge
	}
	if capacity < 1 {
		return nil, ErrCapacity
	}
	id, err := NewMessageID(rand)
	if err != nil {
		return nil, err
	}
	count := max(1, (len(msg)+capacity-1)/capacity)
	frags := make([]Fragment, count)
	for i := range frags {
		lo := i * capacity
		hi := min(lo+capacity, len(msg))
		frags[i] = Fragment{
			ID:    id,
			Index: uint32(i),
			Count: uint32(count),
			Total: uint32(len(msg)),
			Body:  msg[lo:hi:hi],
		}
	}
	return frags, nil
}

// consistent reports whether a fragment's fields could belong to a real
// message: a fragment that fails this was not made by Split.
func (f *Fragment) consistent() bool {
	switch {
	case f.Count == 0 || f.Index >= f.Count:
		return false
	case uint64(len(f.Body)) > uint64(f.Total):
		return false
	case f.Total == 0:
		return f.Count == 1
	default:
		// Every fragment carries at least one byte of a non-empty message.
		return len(f.Body) > 0 && f.Count <= f.Total
	}
}

// encodeFragment writes f into pt, which is the whole plaintext of a
// sealed fragment, padding with zeros. The caller has checked that the body
// fits.
func encodeFragment(pt []byte, f *Fragment) {
	pt[0] = fragmentV1
	copy(pt[1:], f.ID[:])
	o := 1 + MessageIDSize
	binary.BigEndian.PutUint32(pt[o:], f.Index)
	binary.BigEndian.PutUint32(pt[o+4:], f.Count)
	binary.BigEndian.PutUint32(pt[o+8:], f.Total)
	binary.BigEndian.PutUint32(pt[o+12:], uint32(len(f.Body)))
	n := copy(pt[fragmentHeader:], f.Body)
	clear(pt[fragmentHeader+n:])
}

// decodeFragment parses the plaintext of an opened fragment. The body is
// copied out. Anything not exactly as encodeFragment writes it (unknown
// version, inconsistent fields, non-zero padding) is refused.
func decodeFragment(pt []byte) (Fragment, bool) {
	var f Fragment
	if len(pt) < fragmentHeader || pt[0] != fragmentV1 {
		return f, false
	}
	copy(f.ID[:], pt[1:])
	o := 1 + MessageIDSize
	f.Index = binary.BigEndian.Uint32(pt[o:])
	f.Count = binary.BigEndian.Uint32(pt[o+4:])
	f.Total = binary.BigEndian.Uint32(pt[o+8:])
	n := binary.BigEndian.Uint32(pt[o+12:])
	rest := pt[fragmentHeader:]
	if uint64(n) > uint64(len(rest)) {
		return Fragment{}, false
	}
	for _, b := range rest[n:] {
		if b != 0 {
			return Fragment{}, false
		}
	}
	f.Body = append(make([]byte, 0, n), rest[:n]...)
	if !f.consistent() {
		return Fragment{}, false
	}
	return f, true
}
