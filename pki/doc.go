// Package pki defines what the directory authorities publish and how it is
// encoded, signed and checked. It does no I/O: the authority daemon
// (pki/authority), the directory client (pki/dirclient) and the pure
// consensus function (pki/consensus) are built on it.
//
// # Objects
//
// A node describes itself for one epoch in a Descriptor: name, ID
// (BLAKE2b-256 of its Ed25519 identity key), X25519 link key, role (mix or
// provider), addresses, and its Sphinx public keys for epochs E, E+1 and E+2.
// It signs the descriptor with its identity key (SignDescriptor) and uploads
// the SignedDescriptor to the authorities during epoch E-1.
//
// Each authority then signs a Vote for epoch E: the descriptors it accepted,
// its geometry and traffic parameters, a commit to a secret random value, and
// the layer assignment of its latest document. Once all votes are in, each
// publishes a Reveal of the committed value. pki/consensus turns the votes and
// reveals into the Document for epoch E; every authority computes the same
// bytes, signs them, and the SignedDocument carries the detached signatures.
//
// A Document holds the Sphinx Geometry as plain numbers, the traffic
// Parameters (every Poisson process as its mean interval), the mixes layer by
// layer, the providers, and the shared random value. Lookups (Node,
// NodeByLinkKey, Layer, MaySend) answer the questions nodes ask of it: who is
// this peer, and may it send to me?
//
// # Encoding
//
// Every object is CBOR in Core Deterministic Encoding (RFC 8949 §4.2.1)
// with small integer map keys. Decoding is strict: input larger than the
// object's limit, unknown or missing fields, duplicate map keys, tags,
// indefinite lengths, and anything that does not re-encode to the identical
// bytes are rejected as ErrMalformed; decoded values are then validated in
// full (ErrInvalid). So one value has exactly one encoding, and a signature
// over the encoding is a signature over the value.
//
// # Signatures
//
// A signature covers a context string naming the object kind and version
// ("chorus-descriptor-v1", "chorus-vote-v1", "chorus-reveal-v1",
// "chorus-document-v1"), a zero byte, and the object's exact bytes, so no
// signature can be replayed as another kind of object. Signing goes through
// the small Signer interface (Public and Sign), which *keys.IdentityPrivateKey
// implements, so a hybrid Ed25519 + ML-DSA-65 scheme can follow without
// touching callers.
//
// Use VerifyDescriptor, VerifyVote, VerifyReveal and VerifyDocument on bytes
// from the network; they decode, check signatures and validate. A document is
// accepted only with valid signatures from at least threshold distinct
// configured authorities over the identical bytes, where threshold must be a
// majority; unknown signers and repeated signatures are ignored. Checking that
// an object is for the expected epoch is the caller's job (ErrWrongEpoch).
//
// # Errors
//
// Every error wraps one sentinel (ErrMalformed, ErrInvalid, ErrBadSignature,
// ErrUnknownSigner, ErrWrongEpoch, ErrNotEnoughSignatures, ErrThreshold) and
// says what was wrong, so callers classify with errors.Is and operators can
// read the text. Errors never contain key material beyond key fingerprints.
package pki
