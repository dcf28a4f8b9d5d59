package store

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	masterKeySize = 32
	bucketIDSize  = 16
	keyIDSize     = 32
	minSealedPad  = 64 // every value's plaintext is padded to at least this
)

// sealer turns logical names into opaque ones and seals values. It is
// derived from the random master key; it holds the only in-memory copies
// of the subkeys and is wiped by Close.
type sealer struct {
	valueKey [32]byte // XChaCha20-Poly1305 key for values
	nameKey  [32]byte // HMAC-SHA256 key for bucket names and record keys
	aead     cipher.AEAD
	rand     io.Reader
}

func newSealer(master *[masterKeySize]byte, rand io.Reader) (*sealer, error) {
	s := &sealer{rand: rand}
	for _, d := range []struct {
		dst  *[32]byte
		info string
	}{{&s.valueKey, "chorus state value key v1"}, {&s.nameKey, "chorus state name key v1"}} {
		k, err := hkdf.Expand(sha256.New, master[:], d.info, 32)
		if err != nil {
			return nil, fmt.Errorf("derive state keys: %w", err)
		}
		copy(d.dst[:], k)
		clear(k)
	}
	aead, err := chacha20poly1305.NewX(s.valueKey[:])
	if err != nil {
		panic("store: XChaCha20-Poly1305 refused a 32-byte key")
	}
	s.aead = aead
	return s, nil
}

// wipe erases the subkeys. The AEAD's own copy of the value key (inside
// x/crypto, unreachable) is dropped for the collector.
func (s *sealer) wipe() {
	clear(s.valueKey[:])
	clear(s.nameKey[:])
	s.aead = nil
}

// bucketID is the opaque on-disk name of a logical table.
func (s *sealer) bucketID(table string) []byte {
	m := hmac.New(sha256.New, s.nameKey[:])
	m.Write([]byte("table\x00"))
	m.Write([]byte(table))
	return m.Sum(nil)[:bucketIDSize]
}

// keyID is the opaque on-disk key of a logical record key: HMAC over the
// table and key, so equal keys in different tables do not look alike.
func (s *sealer) keyID(table string, key []byte) []byte {
	m := hmac.New(sha256.New, s.nameKey[:])
	m.Write([]byte("key\x00"))
	m.Write([]byte(table))
	m.Write([]byte{0})
	m.Write(key)
	return m.Sum(nil)
}

// ad binds a sealed value to where it is stored, so values cannot be moved
// between records or tables without detection.
func ad(bucket, kid []byte) []byte {
	a := make([]byte, 0, 16+len(bucket)+len(kid))
	a = append(a, "chorus state v1\x00"...)
	a = append(a, bucket...)
	return append(a, kid...)
}

// seal encrypts value for (bucket, kid): a random 24-byte nonce, then
// XChaCha20-Poly1305 of length(4) || value || zeros, padded with Padmé so
// that stored sizes reveal little about value sizes.
func (s *sealer) seal(bucket, kid, value []byte) ([]byte, error) {
	n := padLength(4 + len(value))
	pt := make([]byte, n)
	defer clear(pt)
	binary.BigEndian.PutUint32(pt, uint32(len(value)))
	copy(pt[4:], value)
	out := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+n+chacha20poly1305.Overhead)
	if _, err := io.ReadFull(s.rand, out); err != nil {
		return nil, fmt.Errorf("seal record: %w", err)
	}
	return s.aead.Seal(out, out[:chacha20poly1305.NonceSizeX], pt, ad(bucket, kid)), nil
}

// open decrypts what seal made for (bucket, kid).
func (s *sealer) open(bucket, kid, sealed []byte) ([]byte, error) {
	if len(sealed) < chacha20poly1305.NonceSizeX+4+chacha20poly1305.Overhead {
		return nil, ErrCorrupt
	}
	nonce, ct := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
	pt, err := s.aead.Open(nil, nonce, ct, ad(bucket, kid))
	if err != nil {
		return nil, ErrCorrupt
	}
	n := binary.BigEndian.Uint32(pt)
	if uint64(n) > uint64(len(pt)-4) {
		clear(pt)
		return nil, ErrCorrupt
	}
	return pt[4 : 4+n : 4+n], nil
}

// padLength is Padmé (Nikitin et al., "Reducing Metadata Leakage from
// Encrypted Files and Communication with PURBs", PETS 2019): it rounds n up
// so that only O(log log n) bits of the length remain, at most 12% larger,
// and never below minSealedPad.
func padLength(n int) int {
	if n <= minSealedPad {
		return minSealedPad
	}
	e := bits.Len(uint(n)) - 1 // ⌊log₂ n⌋
	s := bits.Len(uint(e))     // ⌊log₂ e⌋ + 1
	mask := 1<<(e-s) - 1
	return (n + mask) &^ mask
}
