package aez

import (
	"crypto/subtle"
	"encoding/binary"
	"unsafe"

	"golang.org/x/crypto/blake2b"
)

// block is one 128-bit AEZ block, most significant byte first.
type block = [16]byte

// extractedKeySize is |I‖J‖L|: the 384-bit key AEZ actually uses.
const extractedKeySize = 48

// state is the per-call key material: the extracted key (I, J, L) and the
// multiples of L the tweaks need. It lives on the caller's stack and is
// wiped before Encrypt or Decrypt returns.
type state struct {
	key [3]block  // I, J, L (spec §1.5: I‖J‖L ← Extract(K))
	l   [8]block  // 0L, 1L, …, 7L for the (i mod 8)·L tweak term
	jl  [8]block  // J ⊕ ((k+1) mod 8)·L: AEZ-core's E^{1,i} tweaks without 2^⌈i/8⌉I
	rk  roundKeys // key as column words, portable round only
	ni  bool      // use the AES-NI routines for this call
}

// init implements Extract(K): a 48-byte key is used as I‖J‖L directly,
// any other length is first hashed with BLAKE2b to 48 bytes (digest length
// parameter 48, no BLAKE2b key). It then precomputes i·L for i < 8.
func (s *state) init(key []byte) {
	if len(key) == extractedKeySize {
		copy(s.key[0][:], key[0:16])
		copy(s.key[1][:], key[16:32])
		copy(s.key[2][:], key[32:48])
	} else {
		k := blake2b.Sum384(key)
		copy(s.key[0][:], k[0:16])
		copy(s.key[1][:], k[16:32])
		copy(s.key[2][:], k[32:48])
		wipeBytes(k[:])
	}
	L := &s.key[2]
	s.l[1] = *L
	double(&s.l[2], L)                  // 2L
	xorBlock(&s.l[3], &s.l[2], L)       // 3L
	double(&s.l[4], &s.l[2])            // 4L
	xorBlock(&s.l[5], &s.l[4], L)       // 5L
	xorBlock(&s.l[6], &s.l[4], &s.l[2]) // 6L
	xorBlock(&s.l[7], &s.l[6], L)       // 7L
	s.ni = useAESNI
	if !s.ni {
		s.rk.load(&s.key)
	}
}

// wipe erases the key material. It is not inlined so that the stores cannot
// be dropped as dead.
//
//go:noinline
func (s *state) wipe() {
	*s = state{}
}

// wipeBlock and wipeBytes erase temporaries; like wipe they are kept out of
// line so the compiler cannot treat the stores as dead.
//
//go:noinline
func wipeBlock(b *block) {
	*b = block{}
}

//go:noinline
func wipeBytes(b []byte) {
	clear(b)
}

// aes4 computes dst = AES4_K(src ⊕ tw); E^{j,i} for j ≥ 0 is aes4 with the
// tweak jJ ⊕ 2^⌈i/8⌉I ⊕ (i mod 8)L.
func (s *state) aes4(dst, src, tw *block) {
	if s.ni {
		aes4NI(&s.key, dst, src, tw)
	} else {
		aes4Generic(&s.rk, dst, src, tw)
	}
}

// aes10 computes dst = AES10_K(src ⊕ tw); E^{-1,i} is aes10 with tweak i·L.
func (s *state) aes10(dst, src, tw *block) {
	if s.ni {
		aes10NI(&s.key, dst, src, tw)
	} else {
		aes10Generic(&s.rk, dst, src, tw)
	}
}

// e0 computes dst = E^{0,i}(src) for i ≤ 8, the tweakable cipher with j = 0:
// AES4 with tweak 2^⌈i/8⌉I ⊕ (i mod 8)L.
func (s *state) e0(dst, src *block, i int) {
	var tw block
	if i == 0 {
		tw = s.key[0] // 2^0·I ⊕ 0·L
	} else {
		double(&tw, &s.key[0]) // 2I, as ⌈i/8⌉ = 1 for 1 ≤ i ≤ 8
		xorBlock(&tw, &tw, &s.l[i%8])
	}
	s.aes4(dst, src, &tw)
	wipeBlock(&tw)
}

// eNeg computes dst = E^{-1,i}(src) = AES10_K(src ⊕ i·L) for 1 ≤ i ≤ 7.
func (s *state) eNeg(dst, src *block, i int) {
	s.aes10(dst, src, &s.l[i])
}

// hash implements AEZ-hash_K(T) for the tweak vector T = ([τ]_128, N, A_1,
// …, A_t) (spec §1.5): the sum of E^{3,1}([τ]_128) and, for the m-th
// vector element (nonce m = 1, A_k m = k+1), E^{m+3,·} over its blocks.
// tauBits is the tag length in bits.
func (s *state) hash(delta *block, tauBits uint64, nonce []byte, ad [][]byte) {
	var blk, tw block
	// [τ]_128 under E^{3,1}: tweak 3J ⊕ 2I ⊕ 1L.
	binary.BigEndian.PutUint64(blk[8:], tauBits)
	double(&tw, &s.key[1])
	xorBlock(&tw, &tw, &s.key[1]) // 3J
	var i2 block
	double(&i2, &s.key[0])
	xorBlock(&tw, &tw, &i2)
	xorBlock(&tw, &tw, &s.l[1])
	s.aes4(delta, &blk, &tw)
	wipeBlock(&i2)
	wipeBlock(&tw)
	wipeBlock(&blk)

	s.hashElement(delta, 4, nonce)
	for k, a := range ad {
		s.hashElement(delta, uint64(k)+5, a)
	}
}

// hashElement adds one vector element x under tweak index j to sum: the
// full blocks x_1 … x_m go through E^{j,1} … E^{j,m}; a final partial block,
// or the empty string, is padded with 10* and goes through E^{j,0}. A
// non-empty x whose length is a multiple of 16 gets no padded block.
func (s *state) hashElement(sum *block, j uint64, x []byte) {
	var jJ, ipow, tw, blk block
	mulSmall(&jJ, &s.key[1], j)
	double(&ipow, &s.key[0]) // 2^⌈i/8⌉·I for i = 1…8
	empty := len(x) == 0
	for i := 1; len(x) >= 16; i++ {
		if i > 1 && i%8 == 1 {
			double(&ipow, &ipow)
		}
		xorBlock(&tw, &jJ, &ipow)
		xorBlock(&tw, &tw, &s.l[i%8])
		s.aes4(&blk, (*block)(x[:16]), &tw)
		xorBlock(sum, sum, &blk)
		x = x[16:]
	}
	if len(x) > 0 || empty {
		clear(blk[:])
		copy(blk[:], x)
		blk[len(x)] = 0x80
		xorBlock(&tw, &jJ, &s.key[0]) // E^{j,0}: jJ ⊕ I
		s.aes4(&blk, &blk, &tw)
		xorBlock(sum, sum, &blk)
	}
	wipeBlock(&jJ)
	wipeBlock(&ipow)
	wipeBlock(&tw)
	wipeBlock(&blk)
}

// prf implements AEZ-prf_K(Δ, τ) (spec §1.5): the first len(out) bytes of
// E^{-1,3}(Δ ⊕ [0]_128) ‖ E^{-1,3}(Δ ⊕ [1]_128) ‖ …
func (s *state) prf(delta *block, out []byte) {
	var ctr, blk block
	for c := uint64(0); len(out) > 0; c++ {
		ctr = *delta
		binary.BigEndian.PutUint64(ctr[8:], binary.BigEndian.Uint64(delta[8:])^c)
		s.eNeg(&blk, &ctr, 3)
		n := copy(out, blk[:])
		out = out[n:]
	}
	wipeBlock(&ctr)
	wipeBlock(&blk)
}

// prfEqual reports, in time independent of the contents, whether
// tag == AEZ-prf_K(Δ, len(tag)).
func (s *state) prfEqual(delta *block, tag []byte) bool {
	var ctr, blk block
	var acc byte
	for c := uint64(0); len(tag) > 0; c++ {
		ctr = *delta
		binary.BigEndian.PutUint64(ctr[8:], binary.BigEndian.Uint64(delta[8:])^c)
		s.eNeg(&blk, &ctr, 3)
		n := min(len(tag), 16)
		for k := range n {
			acc |= blk[k] ^ tag[k]
		}
		tag = tag[n:]
	}
	wipeBlock(&ctr)
	wipeBlock(&blk)
	return subtle.ConstantTimeByteEq(acc, 0) == 1
}

// encipher implements Encipher(K, Δ, X) (d = 0) and Decipher (d = 1) for a
// non-empty X: AEZ-tiny below 32 bytes, AEZ-core from 32 bytes on. out may
// alias in exactly.
func (s *state) encipher(delta *block, in, out []byte, d int) {
	switch {
	case len(in) == 0:
	case len(in) < 32:
		s.tiny(delta, in, out, d)
	default:
		s.core(delta, in, out, d)
	}
}

// Encrypt enciphers plaintext with AEZ v5 under key, nonce, associated data ad and tag length tau (bytes),
// appending the len(plaintext)+tau bytes to dst and returning the result. dst may alias plaintext exactly (dst[:0] == plaintext[:0]) for in-place use.
//
// The ciphertext is Encipher(K, (τ, N, A), plaintext ‖ 0^τ); for an empty
// plaintext it is AEZ-prf(K, (τ, N, A), τ). Any key length is accepted (48
// bytes are used directly, others are hashed with BLAKE2b), as is any nonce
// length. A negative tau, or dst overlapping plaintext other than exactly,
// panics.
func Encrypt(key, nonce []byte, ad [][]byte, tau int, plaintext, dst []byte) []byte {
	if tau < 0 || len(plaintext) > maxInt-tau {
		panic("aez: invalid tag length")
	}
	ret, out := sliceForAppend(dst, len(plaintext)+tau)
	if inexactOverlap(out, plaintext) {
		panic("aez: invalid buffer overlap")
	}

	var s state
	var delta block
	s.init(key)
	s.hash(&delta, uint64(tau)*8, nonce, ad)
	if len(plaintext) == 0 {
		s.prf(&delta, out)
	} else {
		copy(out, plaintext)
		clear(out[len(plaintext):])
		s.encipher(&delta, out, out, 0)
	}
	wipeBlock(&delta)
	s.wipe()
	return ret
}

// Decrypt deciphers ciphertext with AEZ v5 under key, nonce, associated data ad and tag length tau (bytes)
// and checks that its last tau bytes are zero, in constant time. It returns (plaintext appended to dst, true),
// or (nil, false) if the tag does not verify. dst may alias ciphertext exactly (dst[:0] == ciphertext[:0]) for in-place use.
//
// Decrypt deciphers into dst's spare capacity, so up to tau bytes past the
// returned slice are written (they are zero on success). On failure
// everything it wrote is cleared; in place, that is the ciphertext. With tau = 0 every ciphertext is valid:
// AEZ is then a tweakable length-preserving cipher (an SPRP).
func Decrypt(key, nonce []byte, ad [][]byte, tau int, ciphertext, dst []byte) ([]byte, bool) {
	if tau < 0 {
		panic("aez: invalid tag length")
	}
	if len(ciphertext) < tau {
		return nil, false
	}

	var s state
	var delta block
	s.init(key)
	s.hash(&delta, uint64(tau)*8, nonce, ad)
	mlen := len(ciphertext) - tau
	if mlen == 0 {
		ok := s.prfEqual(&delta, ciphertext)
		wipeBlock(&delta)
		s.wipe()
		if !ok {
			return nil, false
		}
		return dst, true
	}

	ret, out := sliceForAppend(dst, len(ciphertext))
	if inexactOverlap(out, ciphertext) {
		panic("aez: invalid buffer overlap")
	}
	s.encipher(&delta, ciphertext, out, 1)
	wipeBlock(&delta)
	s.wipe()

	var acc byte
	for _, b := range out[mlen:] {
		acc |= b
	}
	if subtle.ConstantTimeByteEq(acc, 0) != 1 {
		clear(out)
		return nil, false
	}
	return ret[:len(dst)+mlen], true
}

const maxInt = int(^uint(0) >> 1)

// sliceForAppend extends in by n bytes, reusing its capacity when it can,
// and returns the whole slice and the new tail.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return
}

// inexactOverlap reports whether x and y share memory at any offset other
// than both starting at the same address.
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 || &x[0] == &y[0] {
		return false
	}
	xs := uintptr(unsafe.Pointer(&x[0]))
	ys := uintptr(unsafe.Pointer(&y[0]))
	return xs < ys+uintptr(len(y)) && ys < xs+uintptr(len(x))
}

// xorBlock sets dst = a ⊕ b.
func xorBlock(dst, a, b *block) {
	binary.LittleEndian.PutUint64(dst[0:], binary.LittleEndian.Uint64(a[0:])^binary.LittleEndian.Uint64(b[0:]))
	binary.LittleEndian.PutUint64(dst[8:], binary.LittleEndian.Uint64(a[8:])^binary.LittleEndian.Uint64(b[8:]))
}

// double sets dst = 2·src in GF(2^128) with AEZ's conventions: the block is
// a big-endian 128-bit number, shifted left one bit, with 0x87 folded into
// the low byte when the top bit falls off. Constant time.
func double(dst, src *block) {
	hi := binary.BigEndian.Uint64(src[0:])
	lo := binary.BigEndian.Uint64(src[8:])
	carry := hi >> 63
	hi = hi<<1 | lo>>63
	lo = lo<<1 ^ (0x87 & -carry)
	binary.BigEndian.PutUint64(dst[0:], hi)
	binary.BigEndian.PutUint64(dst[8:], lo)
}

// mulSmall sets dst = j·x in GF(2^128) for a public integer j (the spec's
// jJ), by double-and-add.
func mulSmall(dst, x *block, j uint64) {
	var acc, p block
	p = *x
	for ; j != 0; j >>= 1 {
		if j&1 != 0 {
			xorBlock(&acc, &acc, &p)
		}
		double(&p, &p)
	}
	*dst = acc
	wipeBlock(&acc)
	wipeBlock(&p)
}
