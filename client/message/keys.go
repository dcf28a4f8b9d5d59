package message

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/kem"
	"golang.org/x/crypto/blake2b"
)

// KeySize is the size of a message public key and of a message private key.
const KeySize = x25519.Size

// ErrKey is returned for key bytes of the wrong length, and for a public key
// that is a low-order point (one whose shared secret with any key would be
// all zeros, so that nothing sealed to it would be secret).
var ErrKey = errors.New("message: invalid message key")

// PublicKey is a user's static X25519 message key, the key in a contact
// card. Fragments are sealed to it, and it authenticates the fragments its
// owner seals. The zero value is not a valid key.
type PublicKey struct{ k [KeySize]byte }

// PrivateKey is a user's static X25519 message private key. Create one with
// GenerateKey or NewPrivateKey and wipe it with Zero.
type PrivateKey struct {
	scalar [KeySize]byte
	pub    PublicKey
	// kemKey is circl's view of the same key, made once so that each seal
	// or open does not leave another copy of the scalar on the heap. circl
	// keeps its own copy of the scalar in it, which Zero cannot reach; Zero
	// drops the reference.
	kemKey kem.PrivateKey
}

// lowOrderProbe is any scalar: X25519 with a clamped scalar maps every
// low-order point to zero, so one ladder tells a low-order point apart.
var lowOrderProbe = x25519.Key{9}

// NewPublicKey copies a 32-byte X25519 public key. It refuses low-order
// points.
func NewPublicKey(b []byte) (PublicKey, error) {
	var k PublicKey
	if len(b) != KeySize {
		return k, fmt.Errorf("%w: got %d bytes, want %d", ErrKey, len(b), KeySize)
	}
	copy(k.k[:], b)
	if !k.valid() {
		return PublicKey{}, fmt.Errorf("%w: low-order point", ErrKey)
	}
	return k, nil
}

func (k *PublicKey) valid() bool {
	var out x25519.Key
	pub := x25519.Key(k.k)
	return x25519.Shared(&out, &lowOrderProbe, &pub)
}

// Equal compares in constant time.
func (k PublicKey) Equal(o PublicKey) bool { return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1 }

// IsZero reports whether k is the zero value.
func (k PublicKey) IsZero() bool { return k.Equal(PublicKey{}) }

// Bytes returns a copy of the key bytes.
func (k PublicKey) Bytes() []byte { return append([]byte(nil), k.k[:]...) }

// Array returns the key bytes by value.
func (k PublicKey) Array() [KeySize]byte { return k.k }

// KEMPublicKey returns the key as circl's DHKEM(X25519, HKDF-SHA256) public
// key, for use with github.com/cloudflare/circl/hpke.
func (k PublicKey) KEMPublicKey() kem.PublicKey {
	pk, err := kemScheme.UnmarshalBinaryPublicKey(k.k[:])
	if err != nil {
		// Any 32 bytes are an X25519 public key to circl.
		panic("message: circl refused a 32-byte X25519 public key")
	}
	return pk
}

func (k PublicKey) String() string             { return fingerprint("message", k.k[:]) }
func (k PublicKey) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k PublicKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// GenerateKey creates a fresh message key from rand.
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	var b [KeySize]byte
	defer clear(b[:])
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("generate message key: %w", err)
	}
	return NewPrivateKey(b[:])
}

// NewPrivateKey copies a raw 32-byte X25519 scalar (stored unclamped; the
// ladder clamps).
func NewPrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("%w: got %d bytes, want %d", ErrKey, len(b), KeySize)
	}
	k := new(PrivateKey)
	copy(k.scalar[:], b)
	x25519.KeyGen((*x25519.Key)(&k.pub.k), (*x25519.Key)(&k.scalar))
	sk, err := kemScheme.UnmarshalBinaryPrivateKey(k.scalar[:])
	if err != nil {
		k.Zero()
		panic("message: circl refused a 32-byte X25519 private key")
	}
	k.kemKey = sk
	return k, nil
}

// Public returns the public half.
func (k *PrivateKey) Public() PublicKey { return k.pub }

// Scalar returns the key's own storage, for writing it to the encrypted
// store. It is read-only and must not be retained: Zero wipes it.
func (k *PrivateKey) Scalar() *[KeySize]byte { return &k.scalar }

// KEMPrivateKey returns the key as circl's DHKEM(X25519, HKDF-SHA256)
// private key, for use with github.com/cloudflare/circl/hpke. It is shared
// with k and must not be used after k.Zero.
func (k *PrivateKey) KEMPrivateKey() kem.PrivateKey { return k.kemKey }

// Zero wipes the private key. The key must not be used afterwards.
func (k *PrivateKey) Zero() {
	clear(k.scalar[:])
	k.kemKey = nil
}

func (k *PrivateKey) usable() bool { return k != nil && k.kemKey != nil }

func (k PrivateKey) String() string             { return fingerprint("message-private", k.pub.k[:]) }
func (k PrivateKey) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k PrivateKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// fingerprint is the first four bytes of BLAKE2b-256 of b, in hex, after a
// kind label: enough to tell keys apart in a log, nothing to attack.
func fingerprint(kind string, b []byte) string {
	h := blake2b.Sum256(b)
	return fmt.Sprintf("%s:%x", kind, h[:4])
}
