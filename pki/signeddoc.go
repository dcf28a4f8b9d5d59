package pki

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// MaxSignatures bounds the signatures a SignedDocument may carry on the
// wire, duplicates and unknown signers included.
const MaxSignatures = 64

// Signature is one authority's detached signature over a document's bytes.
type Signature struct {
	Signer    keys.IdentityPublicKey
	Signature []byte
}

// SignedDocument is a document as published: the exact signed bytes (the
// canonical encoding of a Document) and the authorities' detached
// signatures over them, in ascending order of signer key when built with
// Sign and AddSignature.
type SignedDocument struct {
	Body       []byte
	Signatures []Signature
}

// NewSignedDocument validates and encodes d, with no signatures yet.
func NewSignedDocument(d *Document) (*SignedDocument, error) {
	body, err := d.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &SignedDocument{Body: body}, nil
}

// Sign adds s's signature over the body, replacing an earlier signature by
// the same key.
func (sd *SignedDocument) Sign(s Signer) {
	sd.put(Signature{Signer: s.Public(), Signature: sign(s, contextDocument, sd.Body)})
}

// AddSignature adds another authority's signature after checking that it
// verifies over the body; it replaces an earlier signature by the same key.
// Whether the signer is an authority is decided later, by Verify.
func (sd *SignedDocument) AddSignature(sig Signature) error {
	if len(sig.Signature) > MaxSignatureSize || !verify(sig.Signer, contextDocument, sd.Body, sig.Signature) {
		return fmt.Errorf("pki: add document signature by %v: %w", sig.Signer, ErrBadSignature)
	}
	sd.put(Signature{Signer: sig.Signer, Signature: clone(sig.Signature)})
	return nil
}

func (sd *SignedDocument) put(sig Signature) {
	key := sig.Signer.Array()
	i, found := slices.BinarySearchFunc(sd.Signatures, key, func(s Signature, k [keys.PublicKeySize]byte) int {
		a := s.Signer.Array()
		return bytes.Compare(a[:], k[:])
	})
	if found {
		sd.Signatures[i] = sig
		return
	}
	sd.Signatures = slices.Insert(sd.Signatures, i, sig)
}

// Verify checks that at least threshold distinct authorities among
// authorities signed the body, ignoring signatures by unknown keys and
// repeated signatures by one key, and only then decodes and validates the
// document. threshold must be a majority of the distinct authorities
// (ErrThreshold otherwise). Too few valid signatures gives
// ErrNotEnoughSignatures, also wrapping ErrBadSignature if some signature by
// an authority did not verify.
func (sd *SignedDocument) Verify(authorities []keys.IdentityPublicKey, threshold int) (*Document, error) {
	set, err := newAuthoritySet(authorities, threshold)
	if err != nil {
		return nil, fmt.Errorf("pki: verify document: %w", err)
	}
	if len(sd.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("pki: verify document: %w", malformedf("%d signatures, limit %d", len(sd.Signatures), MaxSignatures))
	}
	counted := make([]bool, len(set))
	valid, bad := 0, 0
	for _, s := range sd.Signatures {
		i := set.index(s.Signer)
		if i < 0 || counted[i] {
			continue
		}
		if !verify(set[i], contextDocument, sd.Body, s.Signature) {
			bad++
			continue
		}
		counted[i] = true
		valid++
	}
	if valid < threshold {
		if bad > 0 {
			return nil, fmt.Errorf("pki: verify document: %w: %d valid of %d needed (%w by %d)", ErrNotEnoughSignatures, valid, threshold, ErrBadSignature, bad)
		}
		return nil, fmt.Errorf("pki: verify document: %w: %d valid of %d needed", ErrNotEnoughSignatures, valid, threshold)
	}
	d, err := unmarshalDocument(sd.Body)
	if err != nil {
		return nil, fmt.Errorf("pki: verify document: %w", err)
	}
	return d, nil
}

// VerifyDocument decodes a published document and verifies it as
// SignedDocument.Verify does. The caller still checks that the epoch is the
// one it wanted (ErrWrongEpoch).
func VerifyDocument(raw []byte, authorities []keys.IdentityPublicKey, threshold int) (*Document, error) {
	sd, err := UnmarshalSignedDocument(raw)
	if err != nil {
		return nil, err
	}
	return sd.Verify(authorities, threshold)
}

type wireSignature struct {
	Signer    []byte `cbor:"1,keyasint"`
	Signature []byte `cbor:"2,keyasint"`
}

type wireSignedDocument struct {
	Body       []byte          `cbor:"1,keyasint"`
	Signatures []wireSignature `cbor:"2,keyasint"`
}

// MarshalBinary encodes the signed document for publication, keeping the
// signatures in their order.
func (sd *SignedDocument) MarshalBinary() ([]byte, error) {
	if len(sd.Body) == 0 {
		return nil, fmt.Errorf("pki: encode signed document: %w", malformedf("empty body"))
	}
	if len(sd.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("pki: encode signed document: %w", malformedf("%d signatures, limit %d", len(sd.Signatures), MaxSignatures))
	}
	w := wireSignedDocument{Body: sd.Body, Signatures: make([]wireSignature, len(sd.Signatures))}
	for i, s := range sd.Signatures {
		if len(s.Signature) == 0 || len(s.Signature) > MaxSignatureSize {
			return nil, fmt.Errorf("pki: encode signed document: %w", malformedf("signature %d of %d bytes", i, len(s.Signature)))
		}
		w.Signatures[i] = wireSignature{Signer: s.Signer.Bytes(), Signature: s.Signature}
	}
	b, err := encode(&w)
	if err == nil && len(b) > MaxDocumentSize {
		err = malformedf("%d bytes, limit %d", len(b), MaxDocumentSize)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: encode signed document: %w", err)
	}
	return b, nil
}

// UnmarshalSignedDocument decodes a published document's envelope without
// checking signatures or the body; see Verify.
func UnmarshalSignedDocument(b []byte) (*SignedDocument, error) {
	sd, err := unmarshalSignedDocument(b)
	if err != nil {
		return nil, fmt.Errorf("pki: decode signed document: %w", err)
	}
	return sd, nil
}

func unmarshalSignedDocument(b []byte) (*SignedDocument, error) {
	var w wireSignedDocument
	if err := decodeCanonical(b, MaxDocumentSize, &w); err != nil {
		return nil, err
	}
	if len(w.Body) == 0 {
		return nil, malformedf("empty body")
	}
	if len(w.Signatures) > MaxSignatures {
		return nil, malformedf("%d signatures, limit %d", len(w.Signatures), MaxSignatures)
	}
	sd := &SignedDocument{Body: clone(w.Body), Signatures: make([]Signature, len(w.Signatures))}
	for i, s := range w.Signatures {
		k, err := keys.NewIdentityPublicKey(s.Signer)
		if err != nil {
			return nil, malformedf("signature %d: signer: %v", i, err)
		}
		if len(s.Signature) == 0 || len(s.Signature) > MaxSignatureSize {
			return nil, malformedf("signature %d of %d bytes", i, len(s.Signature))
		}
		sd.Signatures[i] = Signature{Signer: k, Signature: clone(s.Signature)}
	}
	return sd, nil
}
