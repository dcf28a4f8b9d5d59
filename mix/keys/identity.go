package keys

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/crypto/blake2b"
)

// SignatureSize is the size of an Ed25519 signature.
const SignatureSize = ed25519.SignatureSize

// IdentityPublicKey is an Ed25519 public key that names a node or authority.
type IdentityPublicKey struct{ k publicKey }

// IdentityPrivateKey is an Ed25519 private key. Its zero value is not usable;
// create one with GenerateIdentityKey, NewIdentityPrivateKey or
// LoadOrCreateIdentity.
type IdentityPrivateKey struct {
	priv [ed25519.PrivateKeySize]byte // seed || public key, as crypto/ed25519 lays it out
	pub  IdentityPublicKey
}

// NewIdentityPublicKey copies a 32-byte Ed25519 public key.
func NewIdentityPublicKey(b []byte) (IdentityPublicKey, error) {
	var k IdentityPublicKey
	err := k.k.set(b)
	return k, err
}

// GenerateIdentityKey creates a fresh identity key from rand.
func GenerateIdentityKey(rand io.Reader) (*IdentityPrivateKey, error) {
	var seed [ed25519.SeedSize]byte
	defer clear(seed[:])
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	return NewIdentityPrivateKey(seed[:])
}

// NewIdentityPrivateKey makes an identity key from a 32-byte Ed25519 seed.
// The caller's bytes are copied.
func NewIdentityPrivateKey(seed []byte) (*IdentityPrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: got %d bytes, want %d", ErrKeySize, len(seed), ed25519.SeedSize)
	}
	k := new(IdentityPrivateKey)
	full := ed25519.NewKeyFromSeed(seed)
	copy(k.priv[:], full)
	clear(full)
	copy(k.pub.k[:], k.priv[ed25519.SeedSize:])
	return k, nil
}

// Public returns the public half.
func (k *IdentityPrivateKey) Public() IdentityPublicKey { return k.pub }

// Sign signs msg with Ed25519.
func (k *IdentityPrivateKey) Sign(msg []byte) []byte {
	return ed25519.Sign(ed25519.PrivateKey(k.priv[:]), msg)
}

// Zero wipes the private key. The key must not be used afterwards.
func (k *IdentityPrivateKey) Zero() { clear(k.priv[:]) }

// seed returns the 32-byte seed, for writing the key file.
func (k *IdentityPrivateKey) seed() []byte { return k.priv[:ed25519.SeedSize] }

func (k IdentityPrivateKey) String() string             { return k.pub.k.fingerprint("identity-private") }
func (k IdentityPrivateKey) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k IdentityPrivateKey) Format(f fmt.State, _ rune) { redacted(f, k.String()) }

// Verify reports whether sig is a valid Ed25519 signature of msg by k.
func (k IdentityPublicKey) Verify(msg, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(k.k[:]), msg, sig)
}

// NodeID is BLAKE2b-256 of the identity public key: how nodes are named in
// descriptors, documents and Sphinx routing commands.
func (k IdentityPublicKey) NodeID() [32]byte { return blake2b.Sum256(k.k[:]) }

// Equal compares in constant time.
func (k IdentityPublicKey) Equal(o IdentityPublicKey) bool { return k.k.equal(&o.k) }

// IsZero reports whether k is the zero value.
func (k IdentityPublicKey) IsZero() bool { return k.k.isZero() }

// Bytes returns a copy of the key bytes.
func (k IdentityPublicKey) Bytes() []byte { return append([]byte(nil), k.k[:]...) }

// Array returns the key bytes by value.
func (k IdentityPublicKey) Array() [PublicKeySize]byte { return k.k }

func (k IdentityPublicKey) MarshalBinary() ([]byte, error)  { return k.Bytes(), nil }
func (k *IdentityPublicKey) UnmarshalBinary(b []byte) error { return k.k.set(b) }
func (k IdentityPublicKey) MarshalText() ([]byte, error)    { return k.k.marshalText(), nil }
func (k *IdentityPublicKey) UnmarshalText(b []byte) error   { return k.k.unmarshalText(b) }
func (k IdentityPublicKey) String() string                  { return k.k.fingerprint("identity") }
func (k IdentityPublicKey) LogValue() slog.Value            { return slog.StringValue(k.String()) }
func (k IdentityPublicKey) Format(f fmt.State, _ rune)      { redacted(f, k.String()) }
