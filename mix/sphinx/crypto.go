package sphinx

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/sha512"

	"golang.org/x/crypto/chacha20"

	"github.com/chorus-mixnet/chorus/mix/sphinx/internal/aez"
)

// The symmetric primitives of Katzenpost's X25519 Sphinx (vectors/README.md):
//
//	KDF      HKDF-Expand(SHA-256, PRK = shared secret, info = kdfInfo), 160 bytes
//	MAC      HMAC-SHA256, 32 bytes
//	stream   AES-256-CTR, 128-bit big-endian counter over the whole IV
//	SPRP     AEZ v5, tau = 0, no associated data
//	blinding the first 32 bytes of ChaCha20(key = seed, nonce = 0)
//	replay   SHA-512/256(alpha)
//
// HMAC and HKDF are written here over sha256.Sum256 and fixed-size stack
// buffers: crypto/hmac and crypto/hkdf allocate several objects per use,
// which the unwrap path avoids.

const kdfInfo = "katzenpost-kdf-v0-hkdf-sha256"

const (
	sha256BlockSize = 64
	ipad            = 0x36
	opad            = 0x5c
)

// kdfMessageMax is the longest HKDF-Expand block input: T(i-1) | info | i.
const kdfMessageMax = sha256.Size + len(kdfInfo) + 1

// hmacKDF computes one HKDF-Expand block: HMAC(prk, prev | info | counter).
func hmacKDF(out, prk *[32]byte, prev []byte, counter byte) {
	var buf [sha256BlockSize + kdfMessageMax]byte
	for i := range prk {
		buf[i] = prk[i] ^ ipad
	}
	for i := len(prk); i < sha256BlockSize; i++ {
		buf[i] = ipad
	}
	n := sha256BlockSize
	n += copy(buf[n:], prev)
	n += copy(buf[n:], kdfInfo)
	buf[n] = counter
	n++
	inner := sha256.Sum256(buf[:n])
	hmacOuter(out, prk, &inner, buf[:])
	clear(buf[:])
	clear(inner[:])
}

// hmacOuter finishes an HMAC: out = SHA-256(key^opad | inner), using buf
// (at least 96 bytes) as scratch.
func hmacOuter(out, key, inner *[32]byte, buf []byte) {
	for i := range key {
		buf[i] = key[i] ^ opad
	}
	for i := len(key); i < sha256BlockSize; i++ {
		buf[i] = opad
	}
	copy(buf[sha256BlockSize:], inner[:])
	*out = sha256.Sum256(buf[:sha256BlockSize+sha256.Size])
}

// headerMAC sets out to HMAC-SHA256(key, parts...); the parts together are
// at most maxHeaderLength bytes (AD, alpha and beta).
func headerMAC(out, key *[32]byte, parts ...[]byte) {
	var buf [sha256BlockSize + maxHeaderLength]byte
	for i := range key {
		buf[i] = key[i] ^ ipad
	}
	for i := len(key); i < sha256BlockSize; i++ {
		buf[i] = ipad
	}
	n := sha256BlockSize
	for _, p := range parts {
		n += copy(buf[n:], p)
	}
	inner := sha256.Sum256(buf[:n])
	hmacOuter(out, key, &inner, buf[:])
	clear(buf[:sha256BlockSize+sha256.Size])
}

// kdf produces the 160-byte HKDF-Expand output block by block, so that
// Unwrap can stop after the MAC key when the MAC does not verify and skip
// the blinding seed when the packet is not forwarded.
//
//	T1 = okm[0:32]    header MAC key
//	T2 = okm[32:64]   header stream key (AES-256)
//	T3 = okm[64:96]   header stream IV [64:80], SPRP key [80:96]
//	T4 = okm[96:128]  SPRP key [96:128]
//	T5 = okm[128:160] blinding seed
type kdf struct {
	prk [32]byte
	t   [32]byte // the last block
	n   byte     // blocks produced so far
}

func (k *kdf) init(sharedSecret *[32]byte) {
	k.prk = *sharedSecret
	k.n = 0
}

// next returns the next 32-byte block; it stays valid until the next call.
func (k *kdf) next() *[32]byte {
	var prev []byte
	if k.n > 0 {
		prev = k.t[:]
	}
	k.n++
	hmacKDF(&k.t, &k.prk, prev, k.n)
	return &k.t
}

func (k *kdf) wipe() {
	clear(k.prk[:])
	clear(k.t[:])
}

// hopKeys are the per-hop keys, as the KDF lays them out.
type hopKeys struct {
	macKey    [32]byte
	streamKey [32]byte
	iv        [16]byte // header stream IV, also the SPRP nonce
	sprpKey   [sprpKeyLength]byte
	blindSeed [32]byte
}

// derive sets all of k from a shared secret.
func (k *hopKeys) derive(sharedSecret *[32]byte) {
	var d kdf
	d.init(sharedSecret)
	k.macKey = *d.next()
	k.streamKey = *d.next()
	t := d.next()
	copy(k.iv[:], t[:16])
	copy(k.sprpKey[:16], t[16:])
	copy(k.sprpKey[16:], d.next()[:])
	k.blindSeed = *d.next()
	d.wipe()
}

func (k *hopKeys) wipe() { *k = hopKeys{} }

// newStream returns the AES-256-CTR header stream for key and iv.
func newStream(key *[32]byte, iv *[16]byte) cipher.Stream {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic("sphinx: aes: " + err.Error()) // unreachable: the key is 32 bytes
	}
	return cipher.NewCTR(block, iv[:])
}

// blindingScalar sets out to the blinding scalar derived from seed: the
// first 32 bytes of the ChaCha20 keystream with an all-zero nonce. The
// X25519 ladder clamps it when it is used.
func blindingScalar(out, seed *[32]byte) {
	var nonce [chacha20.NonceSize]byte
	c, err := chacha20.NewUnauthenticatedCipher(seed[:], nonce[:])
	if err != nil {
		panic("sphinx: chacha20: " + err.Error()) // unreachable: fixed sizes
	}
	clear(out[:])
	c.XORKeyStream(out[:], out[:])
	*c = chacha20.Cipher{}
}

// replayTag returns SHA-512/256(alpha).
func replayTag(alpha []byte) [ReplayTagLength]byte {
	return sha512.Sum512_256(alpha)
}

// sprpEncrypt and sprpDecrypt apply AEZ (tau = 0, no associated data) to b
// in place.
func sprpEncrypt(key *[sprpKeyLength]byte, iv *[sprpIVLength]byte, b []byte) {
	aez.Encrypt(key[:], iv[:], nil, 0, b, b[:0])
}

func sprpDecrypt(key *[sprpKeyLength]byte, iv *[sprpIVLength]byte, b []byte) bool {
	_, ok := aez.Decrypt(key[:], iv[:], nil, 0, b, b[:0])
	return ok
}

// ctIsZero reports in constant time whether every byte of b is zero.
func ctIsZero(b []byte) bool {
	var acc byte
	for _, v := range b {
		acc |= v
	}
	return acc == 0
}
