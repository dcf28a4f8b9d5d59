package link

import (
	"crypto/cipher"
	"encoding/binary"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
)

// defaultRekeyInterval is how many frames each direction carries under one
// key before both sides apply Noise's REKEY. 2^20 frames is about 3 GiB at
// the default packet length, a few minutes of a busy mix link; the 64-bit
// nonce itself would last for ever, so this bounds how much traffic one key
// protects rather than guarding the nonce space.
const defaultRekeyInterval = 1 << 20

// cipherState is one direction of the transport: the Noise CipherState of
// ChaChaPoly with the frame counter as nonce, rekeyed every rekeyInterval
// frames. It is our own rather than flynn/noise's CipherState so that the
// hot path does not allocate (noise builds every nonce on the heap) and so
// that the key copy we hold can be wiped. The construction is the Noise
// specification's, and a test checks it against flynn/noise byte for byte.
//
// A cipherState is not safe for concurrent use.
type cipherState struct {
	aead  cipher.AEAD
	key   [32]byte
	n     uint64
	every uint64
	nonce [chacha20poly1305.NonceSize]byte
}

func newCipherState(key [32]byte, every uint64) *cipherState {
	if every == 0 {
		every = defaultRekeyInterval
	}
	c := &cipherState{key: key, every: every}
	c.setKey()
	return c
}

func (c *cipherState) setKey() {
	aead, err := chacha20poly1305.New(c.key[:])
	if err != nil {
		panic("link: " + err.Error()) // unreachable: the key is 32 bytes
	}
	c.aead = aead
}

// nonceFor encodes n as Noise's ChaChaPoly nonce: four zero bytes and the
// little-endian 64-bit counter.
func (c *cipherState) nonceFor(n uint64) []byte {
	binary.LittleEndian.PutUint64(c.nonce[4:], n)
	return c.nonce[:]
}

// seal encrypts plaintext into dst[:0] (which may be plaintext[:0]) and
// returns the ciphertext, which is len(plaintext)+16 bytes.
func (c *cipherState) seal(dst, plaintext []byte) []byte {
	out := c.aead.Seal(dst[:0], c.nonceFor(c.n), plaintext, nil)
	c.advance()
	return out
}

// open decrypts and authenticates ciphertext into dst[:0] (which may be
// ciphertext[:0]). On failure the state is unchanged and the caller must
// drop the link: there is no way to resynchronise a stream.
func (c *cipherState) open(dst, ciphertext []byte) ([]byte, error) {
	out, err := c.aead.Open(dst[:0], c.nonceFor(c.n), ciphertext, nil)
	if err != nil {
		return nil, ErrMalformed
	}
	c.advance()
	return out, nil
}

func (c *cipherState) advance() {
	c.n++
	if c.n%c.every == 0 {
		c.rekey()
	}
}

// rekey is Noise's REKEY(k): the first 32 bytes of ENCRYPT(k, 2^64-1, "",
// 32 zero bytes). The nonce counter carries on unchanged.
func (c *cipherState) rekey() {
	var buf [32 + tagLength]byte
	out := c.aead.Seal(buf[:0], c.nonceFor(math.MaxUint64), buf[:32], nil)
	copy(c.key[:], out[:32])
	clear(buf[:])
	c.setKey()
}

// wipe erases the key we hold and drops the AEAD (x/crypto offers no way to
// erase its internal copy; it becomes garbage). The state cannot be used
// afterwards.
func (c *cipherState) wipe() {
	if c == nil {
		return
	}
	clear(c.key[:])
	c.aead = nil
}
