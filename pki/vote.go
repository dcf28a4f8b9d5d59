package pki

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"golang.org/x/crypto/blake2b"
)

// Vote is one authority's signed proposal for the document of epoch Epoch.
// pki/consensus turns a set of votes and reveals into the document.
type Vote struct {
	// Epoch is the epoch of the document voted on.
	Epoch uint64
	// Authority is the voter; it signs the vote.
	Authority keys.IdentityPublicKey
	// Descriptors are the signed descriptors for Epoch the authority
	// accepted, at most one per node. Encoding sorts them by their bytes.
	Descriptors []*SignedDescriptor
	// Geometry and Parameters are the authority's configured values.
	Geometry   Geometry
	Parameters Parameters
	// Commit binds the authority to its reveal value (Reveal.Commit).
	Commit [32]byte
	// PriorLayers is the layer assignment of the latest document the
	// authority holds, as node IDs per layer, so that nodes keep their
	// layer; empty if it holds none. Encoding sorts each layer.
	PriorLayers [][]NodeID
}

// Validate checks every field, including every descriptor's signature and
// that each is for v.Epoch. The error wraps ErrInvalid, ErrMalformed or
// ErrBadSignature.
func (v *Vote) Validate() error {
	if err := v.validate(); err != nil {
		return fmt.Errorf("pki: validate vote: %w", err)
	}
	return nil
}

func (v *Vote) validate() error {
	if err := v.validateShallow(); err != nil {
		return err
	}
	ids := make(map[NodeID]bool, len(v.Descriptors))
	for i, sd := range v.Descriptors {
		if sd == nil {
			return invalidf("descriptor %d missing", i)
		}
		d, err := sd.verify()
		if err != nil {
			return fmt.Errorf("descriptor %d: %w", i, err)
		}
		if d.Epoch != v.Epoch {
			return fmt.Errorf("descriptor %d: node %q: %w: for epoch %d, vote for epoch %d", i, d.Name, ErrWrongEpoch, d.Epoch, v.Epoch)
		}
		if ids[d.ID] {
			return invalidf("descriptor %d: node %q: two descriptors for one node", i, d.Name)
		}
		ids[d.ID] = true
	}
	return nil
}

// validateShallow checks everything but the descriptors' contents.
func (v *Vote) validateShallow() error {
	if v.Epoch > MaxEpoch {
		return invalidf("epoch %d too large", v.Epoch)
	}
	if v.Authority.IsZero() {
		return invalidf("zero authority key")
	}
	if len(v.Descriptors) > MaxNodes {
		return invalidf("%d descriptors, limit %d", len(v.Descriptors), MaxNodes)
	}
	if err := v.Geometry.validate(); err != nil {
		return err
	}
	if err := v.Parameters.validate(); err != nil {
		return err
	}
	if len(v.PriorLayers) > MaxLayers {
		return invalidf("%d prior layers, limit %d", len(v.PriorLayers), MaxLayers)
	}
	seen := make(map[NodeID]bool)
	for i, l := range v.PriorLayers {
		for _, id := range l {
			if seen[id] {
				return invalidf("prior layer %d: node listed twice", i)
			}
			seen[id] = true
		}
	}
	if len(seen) > MaxNodes {
		return invalidf("%d prior nodes, limit %d", len(seen), MaxNodes)
	}
	return nil
}

type wireVote struct {
	Epoch       uint64         `cbor:"1,keyasint"`
	Authority   []byte         `cbor:"2,keyasint"`
	Descriptors []envelope     `cbor:"3,keyasint"`
	Geometry    wireGeometry   `cbor:"4,keyasint"`
	Parameters  wireParameters `cbor:"5,keyasint"`
	Commit      []byte         `cbor:"6,keyasint"`
	PriorLayers [][][]byte     `cbor:"7,keyasint"`
}

func (v *Vote) toWire() wireVote {
	w := wireVote{
		Epoch:       v.Epoch,
		Authority:   v.Authority.Bytes(),
		Descriptors: make([]envelope, len(v.Descriptors)),
		Geometry:    v.Geometry.toWire(),
		Parameters:  v.Parameters.toWire(),
		Commit:      clone(v.Commit[:]),
		PriorLayers: make([][][]byte, len(v.PriorLayers)),
	}
	for i, sd := range v.Descriptors {
		w.Descriptors[i] = envelope{Body: sd.Body, Signature: sd.Signature}
	}
	slices.SortFunc(w.Descriptors, func(a, b envelope) int {
		if c := bytes.Compare(a.Body, b.Body); c != 0 {
			return c
		}
		return bytes.Compare(a.Signature, b.Signature)
	})
	for i, l := range v.PriorLayers {
		w.PriorLayers[i] = make([][]byte, len(l))
		for j, id := range l {
			w.PriorLayers[i][j] = clone(id[:])
		}
		slices.SortFunc(w.PriorLayers[i], bytes.Compare)
	}
	return w
}

func (w *wireVote) fromWire() (*Vote, error) {
	v := &Vote{Epoch: w.Epoch}
	var err error
	if v.Authority, err = keys.NewIdentityPublicKey(w.Authority); err != nil {
		return nil, malformedf("authority key: %v", err)
	}
	if len(w.Commit) != len(v.Commit) {
		return nil, malformedf("commit of %d bytes", len(w.Commit))
	}
	copy(v.Commit[:], w.Commit)
	if v.Geometry, err = w.Geometry.fromWire(); err != nil {
		return nil, err
	}
	if v.Parameters, err = w.Parameters.fromWire(); err != nil {
		return nil, err
	}
	if len(w.Descriptors) > MaxNodes {
		return nil, invalidf("%d descriptors, limit %d", len(w.Descriptors), MaxNodes)
	}
	v.Descriptors = make([]*SignedDescriptor, len(w.Descriptors))
	for i := range w.Descriptors {
		e := &w.Descriptors[i]
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("descriptor %d: %w", i, err)
		}
		if i > 0 && bytes.Equal(e.Body, w.Descriptors[i-1].Body) {
			return nil, invalidf("descriptor %d: listed twice", i)
		}
		v.Descriptors[i] = &SignedDescriptor{Body: clone(e.Body), Signature: clone(e.Signature)}
	}
	if len(w.PriorLayers) > MaxLayers {
		return nil, invalidf("%d prior layers, limit %d", len(w.PriorLayers), MaxLayers)
	}
	v.PriorLayers = make([][]NodeID, len(w.PriorLayers))
	for i, l := range w.PriorLayers {
		v.PriorLayers[i] = make([]NodeID, len(l))
		for j, id := range l {
			if len(id) != len(NodeID{}) {
				return nil, malformedf("prior layer %d: node id of %d bytes", i, len(id))
			}
			copy(v.PriorLayers[i][j][:], id)
		}
	}
	return v, v.validateShallow()
}

// SignedVote is a vote as exchanged between authorities: the exact signed
// bytes (the canonical encoding of a Vote) and the voter's signature.
type SignedVote struct {
	Body      []byte
	Signature []byte
}

// SignVote validates v and signs it with s, which must hold v.Authority.
func SignVote(s Signer, v *Vote) (*SignedVote, error) {
	if !s.Public().Equal(v.Authority) {
		return nil, fmt.Errorf("pki: sign vote: %w: signer is not the vote's authority", ErrInvalid)
	}
	if err := v.validate(); err != nil {
		return nil, fmt.Errorf("pki: sign vote: %w", err)
	}
	w := v.toWire()
	body, err := encode(&w)
	if err == nil && len(body)+2*MaxSignatureSize > MaxVoteSize {
		err = malformedf("%d bytes, limit %d", len(body), MaxVoteSize-2*MaxSignatureSize)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: sign vote: %w", err)
	}
	return &SignedVote{Body: body, Signature: sign(s, contextVote, body)}, nil
}

// MarshalBinary encodes the signed vote.
func (sv *SignedVote) MarshalBinary() ([]byte, error) {
	b, err := marshalEnvelope(sv.Body, sv.Signature, MaxVoteSize)
	if err != nil {
		return nil, fmt.Errorf("pki: encode signed vote: %w", err)
	}
	return b, nil
}

// UnmarshalSignedVote decodes a signed vote's envelope without checking the
// signature or the body; see Verify.
func UnmarshalSignedVote(b []byte) (*SignedVote, error) {
	e, err := decodeEnvelope(b, MaxVoteSize)
	if err != nil {
		return nil, fmt.Errorf("pki: decode signed vote: %w", err)
	}
	return &SignedVote{Body: clone(e.Body), Signature: clone(e.Signature)}, nil
}

// Verify decodes the vote, checks that its authority is one of authorities
// (ErrUnknownSigner) and signed it (ErrBadSignature), and validates it,
// including every descriptor's signature. The caller checks the epoch.
func (sv *SignedVote) Verify(authorities []keys.IdentityPublicKey) (*Vote, error) {
	var w wireVote
	if err := decodeCanonical(sv.Body, MaxVoteSize, &w); err != nil {
		return nil, fmt.Errorf("pki: verify vote: %w", err)
	}
	v, err := w.fromWire()
	if err != nil {
		return nil, fmt.Errorf("pki: verify vote: %w", err)
	}
	if !slices.ContainsFunc(authorities, v.Authority.Equal) {
		return nil, fmt.Errorf("pki: verify vote by %v: %w", v.Authority, ErrUnknownSigner)
	}
	if !verify(v.Authority, contextVote, sv.Body, sv.Signature) {
		return nil, fmt.Errorf("pki: verify vote by %v: %w", v.Authority, ErrBadSignature)
	}
	if err := v.validate(); err != nil {
		return nil, fmt.Errorf("pki: verify vote by %v: %w", v.Authority, err)
	}
	return v, nil
}

// VerifyVote decodes a signed vote and verifies it as SignedVote.Verify does.
func VerifyVote(raw []byte, authorities []keys.IdentityPublicKey) (*Vote, error) {
	sv, err := UnmarshalSignedVote(raw)
	if err != nil {
		return nil, err
	}
	return sv.Verify(authorities)
}

// verify is Verify without the outer error prefix, for use inside votes.
func (sd *SignedDescriptor) verify() (*Descriptor, error) {
	d, err := unmarshalDescriptor(sd.Body)
	if err != nil {
		return nil, err
	}
	if !verify(d.IdentityKey, contextDescriptor, sd.Body, sd.Signature) {
		return nil, fmt.Errorf("node %q: %w", d.Name, ErrBadSignature)
	}
	return d, nil
}

func marshalEnvelope(body, sig []byte, limit int) ([]byte, error) {
	e := envelope{Body: body, Signature: sig}
	if err := e.check(); err != nil {
		return nil, err
	}
	b, err := encode(&e)
	if err == nil && len(b) > limit {
		err = malformedf("%d bytes, limit %d", len(b), limit)
	}
	return b, err
}

// Reveal is the random value behind an authority's commit, published only
// once the votes (and so the commits) are exchanged.
type Reveal struct {
	Epoch     uint64
	Authority keys.IdentityPublicKey
	Value     [32]byte
}

// NewReveal draws a fresh reveal value from rand.
func NewReveal(rand io.Reader, epoch uint64, authority keys.IdentityPublicKey) (*Reveal, error) {
	r := &Reveal{Epoch: epoch, Authority: authority}
	if _, err := io.ReadFull(rand, r.Value[:]); err != nil {
		return nil, fmt.Errorf("pki: new reveal: %w", err)
	}
	return r, nil
}

// Commit is the value an authority puts in its vote: BLAKE2b-256 over a
// context string, the epoch, the authority's key and the reveal value, so a
// commit cannot be copied to another epoch or authority.
func (r *Reveal) Commit() [32]byte {
	h, _ := blake2b.New256(nil)
	h.Write([]byte("chorus-commit-v1\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, r.Epoch))
	pk := r.Authority.Array()
	h.Write(pk[:])
	h.Write(r.Value[:])
	var c [32]byte
	h.Sum(c[:0])
	return c
}

type wireReveal struct {
	Epoch     uint64 `cbor:"1,keyasint"`
	Authority []byte `cbor:"2,keyasint"`
	Value     []byte `cbor:"3,keyasint"`
}

// SignedReveal is a reveal as exchanged: the exact signed bytes and the
// authority's signature.
type SignedReveal struct {
	Body      []byte
	Signature []byte
}

// SignReveal signs r with s, which must hold r.Authority.
func SignReveal(s Signer, r *Reveal) (*SignedReveal, error) {
	if !s.Public().Equal(r.Authority) {
		return nil, fmt.Errorf("pki: sign reveal: %w: signer is not the reveal's authority", ErrInvalid)
	}
	if r.Epoch > MaxEpoch {
		return nil, fmt.Errorf("pki: sign reveal: %w", invalidf("epoch %d too large", r.Epoch))
	}
	body, err := encode(&wireReveal{Epoch: r.Epoch, Authority: r.Authority.Bytes(), Value: clone(r.Value[:])})
	if err != nil {
		return nil, fmt.Errorf("pki: sign reveal: %w", err)
	}
	return &SignedReveal{Body: body, Signature: sign(s, contextReveal, body)}, nil
}

// MarshalBinary encodes the signed reveal.
func (sr *SignedReveal) MarshalBinary() ([]byte, error) {
	b, err := marshalEnvelope(sr.Body, sr.Signature, MaxRevealSize)
	if err != nil {
		return nil, fmt.Errorf("pki: encode signed reveal: %w", err)
	}
	return b, nil
}

// UnmarshalSignedReveal decodes a signed reveal's envelope without checking
// the signature or the body; see Verify.
func UnmarshalSignedReveal(b []byte) (*SignedReveal, error) {
	e, err := decodeEnvelope(b, MaxRevealSize)
	if err != nil {
		return nil, fmt.Errorf("pki: decode signed reveal: %w", err)
	}
	return &SignedReveal{Body: clone(e.Body), Signature: clone(e.Signature)}, nil
}

// Verify decodes the reveal and checks that its authority is one of
// authorities (ErrUnknownSigner) and signed it (ErrBadSignature). Whether it
// matches the authority's commit is for the caller (pki/consensus).
func (sr *SignedReveal) Verify(authorities []keys.IdentityPublicKey) (*Reveal, error) {
	var w wireReveal
	if err := decodeCanonical(sr.Body, MaxRevealSize, &w); err != nil {
		return nil, fmt.Errorf("pki: verify reveal: %w", err)
	}
	r := &Reveal{Epoch: w.Epoch}
	var err error
	if r.Authority, err = keys.NewIdentityPublicKey(w.Authority); err != nil {
		return nil, fmt.Errorf("pki: verify reveal: %w", malformedf("authority key: %v", err))
	}
	if len(w.Value) != len(r.Value) {
		return nil, fmt.Errorf("pki: verify reveal: %w", malformedf("value of %d bytes", len(w.Value)))
	}
	copy(r.Value[:], w.Value)
	if r.Epoch > MaxEpoch {
		return nil, fmt.Errorf("pki: verify reveal: %w", invalidf("epoch %d too large", r.Epoch))
	}
	if !slices.ContainsFunc(authorities, r.Authority.Equal) {
		return nil, fmt.Errorf("pki: verify reveal by %v: %w", r.Authority, ErrUnknownSigner)
	}
	if !verify(r.Authority, contextReveal, sr.Body, sr.Signature) {
		return nil, fmt.Errorf("pki: verify reveal by %v: %w", r.Authority, ErrBadSignature)
	}
	return r, nil
}

// VerifyReveal decodes a signed reveal and verifies it as
// SignedReveal.Verify does.
func VerifyReveal(raw []byte, authorities []keys.IdentityPublicKey) (*Reveal, error) {
	sr, err := UnmarshalSignedReveal(raw)
	if err != nil {
		return nil, err
	}
	return sr.Verify(authorities)
}
