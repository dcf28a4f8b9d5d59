package pki

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Size limits on encoded objects, checked before any decoding.
const (
	// MaxDescriptorSize bounds an encoded SignedDescriptor.
	MaxDescriptorSize = 8 << 10
	// MaxDocumentSize bounds an encoded SignedDocument.
	MaxDocumentSize = 4 << 20
	// MaxVoteSize bounds an encoded SignedVote: a document's worth of signed
	// descriptors plus the rest of the vote.
	MaxVoteSize = 16 << 20
	// MaxRevealSize bounds an encoded SignedReveal.
	MaxRevealSize = 1 << 10
)

// Structural limits enforced by the CBOR decoder itself.
const (
	maxArrayElements = 4096 // more than MaxNodes
	maxMapPairs      = 16   // the largest struct has fewer fields; the cbor minimum
	maxNestedLevels  = 8    // signed vote → descriptor list → envelope is the deepest
)

// The encoder and decoder modes are built once and never changed; cbor modes
// are immutable and safe for concurrent use.
var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	opts := cbor.CoreDetEncOptions()
	// Empty lists encode as [] rather than null, so a decoded null never
	// re-encodes to the same bytes and is rejected as non-canonical.
	opts.NilContainers = cbor.NilContainerAsEmpty
	m, err := opts.EncMode()
	if err != nil {
		panic("pki: cbor encoder options: " + err.Error()) // static options: a programming error
	}
	return m
}

func mustDecMode() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   maxNestedLevels,
		MaxArrayElements:  maxArrayElements,
		MaxMapPairs:       maxMapPairs,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic("pki: cbor decoder options: " + err.Error())
	}
	return m
}

// encode returns the Core Deterministic Encoding of a wire struct.
func encode(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		// Wire structs hold only ints, bools, strings, byte strings, lists
		// and maps of them: encoding cannot fail.
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}

// decodeCanonical decodes b (at most limit bytes) into the wire struct v and
// requires b to be exactly the canonical encoding of the result. That single
// check rejects trailing data, non-minimal integers and lengths, unsorted or
// missing map keys, null for a list, and wrong-sized fixed fields that the
// decoder would otherwise pad or truncate.
func decodeCanonical(b []byte, limit int, v any) error {
	if len(b) > limit {
		return malformedf("%d bytes, limit %d", len(b), limit)
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !bytes.Equal(again, b) {
		return malformedf("not in canonical form")
	}
	return nil
}

// envelope is the wire form of every object signed by one key: the exact
// signed bytes and the signature. The signer is named inside the body.
type envelope struct {
	Body      []byte `cbor:"1,keyasint"`
	Signature []byte `cbor:"2,keyasint"`
}

func (e *envelope) check() error {
	if len(e.Body) == 0 {
		return malformedf("empty body")
	}
	if len(e.Signature) == 0 || len(e.Signature) > MaxSignatureSize {
		return malformedf("signature of %d bytes", len(e.Signature))
	}
	return nil
}

func decodeEnvelope(b []byte, limit int) (*envelope, error) {
	var e envelope
	if err := decodeCanonical(b, limit, &e); err != nil {
		return nil, err
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return &e, nil
}

// clone copies a byte slice so that a decoded object never aliases its input.
func clone(b []byte) []byte { return append([]byte(nil), b...) }
