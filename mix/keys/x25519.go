package keys

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/cloudflare/circl/dh/x25519"
	"golang.org/x/crypto/blake2b"
)

// ScalarSize is the size of an X25519 private key.
const ScalarSize = x25519.Size

// x25519Private is the representation shared by link and Sphinx private keys.
type x25519Private struct {
	scalar [ScalarSize]byte // as given; the ladder clamps
	pub    publicKey
}

func (x *x25519Private) set(b []byte) error {
	if len(b) != ScalarSize {
		return fmt.Errorf("%w: got %d bytes, want %d", ErrKeySize, len(b), ScalarSize)
	}
	copy(x.scalar[:], b)
	x25519.KeyGen((*x25519.Key)(&x.pub), (*x25519.Key)(&x.scalar))
	return nil
}

func (x *x25519Private) generate(rand io.Reader) error {
	var b [ScalarSize]byte
	defer clear(b[:])
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return fmt.Errorf("generate x25519 key: %w", err)
	}
	return x.set(b[:])
}

// LinkPublicKey is the static X25519 key of a link endpoint.
type LinkPublicKey struct{ k publicKey }

// LinkPrivateKey is the static X25519 private key of a link endpoint.
type LinkPrivateKey struct{ x x25519Private }

// NewLinkPublicKey copies a 32-byte X25519 public key.
func NewLinkPublicKey(b []byte) (LinkPublicKey, error) {
	var k LinkPublicKey
	err := k.k.set(b)
	return k, err
}

// NewLinkPrivateKey copies a 32-byte X25519 scalar.
func NewLinkPrivateKey(b []byte) (*LinkPrivateKey, error) {
	k := new(LinkPrivateKey)
	if err := k.x.set(b); err != nil {
		return nil, err
	}
	return k, nil
}

// GenerateLinkKey creates a fresh link key from rand.
func GenerateLinkKey(rand io.Reader) (*LinkPrivateKey, error) {
	k := new(LinkPrivateKey)
	if err := k.x.generate(rand); err != nil {
		return nil, err
	}
	return k, nil
}

// Scalar returns the key's own storage. It is read-only and must not be
// retained: Zero wipes it.
func (k *LinkPrivateKey) Scalar() *[ScalarSize]byte { return &k.x.scalar }

// Public returns the public half.
func (k *LinkPrivateKey) Public() LinkPublicKey { return LinkPublicKey{k.x.pub} }

// Zero wipes the private key.
func (k *LinkPrivateKey) Zero() { clear(k.x.scalar[:]) }

func (k LinkPrivateKey) String() string             { return k.x.pub.fingerprint("link-private") }
func (k LinkPrivateKey) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k LinkPrivateKey) Format(f fmt.State, _ rune) { redacted(f, k.String()) }

// Equal compares in constant time.
func (k LinkPublicKey) Equal(o LinkPublicKey) bool { return k.k.equal(&o.k) }

// IsZero reports whether k is the zero value.
func (k LinkPublicKey) IsZero() bool { return k.k.isZero() }

// Bytes returns a copy of the key bytes.
func (k LinkPublicKey) Bytes() []byte { return append([]byte(nil), k.k[:]...) }

// Array returns the key bytes by value.
func (k LinkPublicKey) Array() [PublicKeySize]byte { return k.k }

func (k LinkPublicKey) MarshalBinary() ([]byte, error)  { return k.Bytes(), nil }
func (k *LinkPublicKey) UnmarshalBinary(b []byte) error { return k.k.set(b) }
func (k LinkPublicKey) MarshalText() ([]byte, error)    { return k.k.marshalText(), nil }
func (k *LinkPublicKey) UnmarshalText(b []byte) error   { return k.k.unmarshalText(b) }
func (k LinkPublicKey) String() string                  { return k.k.fingerprint("link") }
func (k LinkPublicKey) LogValue() slog.Value            { return slog.StringValue(k.String()) }
func (k LinkPublicKey) Format(f fmt.State, _ rune)      { redacted(f, k.String()) }

// SphinxPublicKey is a mix's X25519 Sphinx key for one epoch.
type SphinxPublicKey struct{ k publicKey }

// SphinxPrivateKey is a mix's X25519 Sphinx private key for one epoch.
type SphinxPrivateKey struct{ x x25519Private }

// NewSphinxPublicKey copies a 32-byte X25519 public key.
func NewSphinxPublicKey(b []byte) (SphinxPublicKey, error) {
	var k SphinxPublicKey
	err := k.k.set(b)
	return k, err
}

// NewSphinxPrivateKey copies a raw 32-byte X25519 scalar (unclamped as
// stored; the ladder clamps).
func NewSphinxPrivateKey(b []byte) (*SphinxPrivateKey, error) {
	k := new(SphinxPrivateKey)
	if err := k.x.set(b); err != nil {
		return nil, err
	}
	return k, nil
}

// GenerateSphinxKey creates a fresh Sphinx key from rand.
func GenerateSphinxKey(rand io.Reader) (*SphinxPrivateKey, error) {
	k := new(SphinxPrivateKey)
	if err := k.x.generate(rand); err != nil {
		return nil, err
	}
	return k, nil
}

// Scalar returns the key's own storage. It is read-only and must not be
// retained: Zero wipes it.
func (k *SphinxPrivateKey) Scalar() *[ScalarSize]byte { return &k.x.scalar }

// Public returns the public half.
func (k *SphinxPrivateKey) Public() SphinxPublicKey { return SphinxPublicKey{k.x.pub} }

// Zero wipes the private key.
func (k *SphinxPrivateKey) Zero() { clear(k.x.scalar[:]) }

func (k SphinxPrivateKey) String() string             { return k.x.pub.fingerprint("sphinx-private") }
func (k SphinxPrivateKey) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k SphinxPrivateKey) Format(f fmt.State, _ rune) { redacted(f, k.String()) }

// Equal compares in constant time.
func (k SphinxPublicKey) Equal(o SphinxPublicKey) bool { return k.k.equal(&o.k) }

// IsZero reports whether k is the zero value.
func (k SphinxPublicKey) IsZero() bool { return k.k.isZero() }

// Bytes returns a copy of the key bytes.
func (k SphinxPublicKey) Bytes() []byte { return append([]byte(nil), k.k[:]...) }

// Array returns the key bytes by value.
func (k SphinxPublicKey) Array() [PublicKeySize]byte { return k.k }

func (k SphinxPublicKey) MarshalBinary() ([]byte, error)  { return k.Bytes(), nil }
func (k *SphinxPublicKey) UnmarshalBinary(b []byte) error { return k.k.set(b) }
func (k SphinxPublicKey) MarshalText() ([]byte, error)    { return k.k.marshalText(), nil }
func (k *SphinxPublicKey) UnmarshalText(b []byte) error   { return k.k.unmarshalText(b) }
func (k SphinxPublicKey) String() string                  { return k.k.fingerprint("sphinx") }
func (k SphinxPublicKey) LogValue() slog.Value            { return slog.StringValue(k.String()) }
func (k SphinxPublicKey) Format(f fmt.State, _ rune)      { redacted(f, k.String()) }

// mailboxIDContext separates mailbox IDs from every other hash of a link key.
const mailboxIDContext = "chorus mailbox id v1\x00"

// MailboxID names the mailbox that belongs to the client with this link key
// at its provider: BLAKE2b-256("chorus mailbox id v1\x00" || key). It is the
// Sphinx Recipient ID of that client. The provider derives it from the
// authenticated link, so a client can only ever reach its own mailbox.
func (k LinkPublicKey) MailboxID() [32]byte {
	var in [len(mailboxIDContext) + PublicKeySize]byte
	copy(in[:], mailboxIDContext)
	copy(in[len(mailboxIDContext):], k.k[:])
	return blake2b.Sum256(in[:])
}
