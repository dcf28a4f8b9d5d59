package pki

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them, so callers (the authority counts rejected uploads by reason) can
// classify with errors.Is. The wrapping text says what was wrong, for
// example "pki: decode descriptor: malformed: unknown field 9".
var (
	// ErrMalformed: the bytes are not the canonical encoding of the expected
	// structure (bad CBOR, unknown or missing fields, non-canonical form,
	// wrong sizes, too large).
	ErrMalformed = errors.New("malformed")
	// ErrInvalid: the structure decoded but a field has an unacceptable value
	// (a bad address, a missing Sphinx key, a duplicate node, bad geometry).
	ErrInvalid = errors.New("invalid")
	// ErrBadSignature: a signature does not verify, or was made by a key
	// other than the one that must have made it.
	ErrBadSignature = errors.New("bad signature")
	// ErrUnknownSigner: a vote or reveal comes from a key that is not one of
	// the configured authorities.
	ErrUnknownSigner = errors.New("unknown signer")
	// ErrWrongEpoch: an object is well formed but for another epoch than the
	// one the caller expects.
	ErrWrongEpoch = errors.New("wrong epoch")
	// ErrNotEnoughSignatures: a document carries valid signatures from fewer
	// distinct configured authorities than the threshold.
	ErrNotEnoughSignatures = errors.New("not enough signatures")
	// ErrThreshold: the caller's authority set or threshold is unusable (no
	// authorities, or a threshold that is not a majority of them).
	ErrThreshold = errors.New("bad threshold")
)

// invalidf returns an error wrapping ErrInvalid with a description.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// malformedf returns an error wrapping ErrMalformed with a description.
func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
