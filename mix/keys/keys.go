package keys

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/crypto/blake2b"
)

// PublicKeySize is the size of every public key in this package.
const PublicKeySize = 32

// ErrKeySize is returned when key bytes have the wrong length.
var ErrKeySize = errors.New("keys: wrong key size")

// ErrEncoding is returned when a textual key cannot be decoded.
var ErrEncoding = errors.New("keys: malformed key encoding")

// publicKey is the representation shared by all public key types.
type publicKey [PublicKeySize]byte

func (p *publicKey) set(b []byte) error {
	if len(b) != PublicKeySize {
		return fmt.Errorf("%w: got %d bytes, want %d", ErrKeySize, len(b), PublicKeySize)
	}
	copy(p[:], b)
	return nil
}

func (p *publicKey) equal(o *publicKey) bool {
	return subtle.ConstantTimeCompare(p[:], o[:]) == 1
}

func (p *publicKey) isZero() bool {
	var z publicKey
	return p.equal(&z)
}

// fingerprint is the first four bytes of BLAKE2b-256 of the public key, in hex.
func (p *publicKey) fingerprint(kind string) string {
	h := blake2b.Sum256(p[:])
	return fmt.Sprintf("%s:%x", kind, h[:4])
}

func (p *publicKey) marshalText() []byte {
	out := make([]byte, base64.StdEncoding.EncodedLen(PublicKeySize))
	base64.StdEncoding.Encode(out, p[:])
	return out
}

func (p *publicKey) unmarshalText(text []byte) error {
	var b [PublicKeySize + 2]byte
	n, err := base64.StdEncoding.Decode(b[:], text)
	if err != nil || len(text) != base64.StdEncoding.EncodedLen(PublicKeySize) {
		return ErrEncoding
	}
	return p.set(b[:n])
}

// redacted implements fmt.Formatter for every key type: whatever the verb,
// only the fingerprint is printed.
func redacted(f fmt.State, s string) {
	_, _ = f.Write([]byte(s))
}

var _ slog.LogValuer = IdentityPublicKey{}
