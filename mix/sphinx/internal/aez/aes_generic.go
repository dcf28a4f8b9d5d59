package aez

import "encoding/binary"

// This file holds the portable AES round function. AEZ never runs the AES
// block cipher itself: it uses the bare AES round (SubBytes, ShiftRows,
// MixColumns, AddRoundKey, exactly what the x86 AESENC instruction does),
// four times for AES4 and ten times for AES10, with round keys taken from
// the extracted key (I, J, L). Spec §1.5, "AES4 and AES10".
//
// The implementation is the classic 32-bit table formulation: one round is
// sixteen table look-ups. The tables are derived at start-up from the
// definition of the S-box (inversion in GF(2^8) followed by the affine map)
// rather than typed in. Table look-ups are indexed by secret data, so this
// path is not free of cache-timing side channels; it is only used where the
// CPU lacks AES instructions (see doc.go).

// te0..te3 are the combined SubBytes+MixColumns tables: te0[x] is the column
// (2·S(x), S(x), S(x), 3·S(x)) as a big-endian word, and teN is te0 rotated
// right by 8·N bits (the contribution of a byte in row N).
var te0, te1, te2, te3 [256]uint32

func init() {
	// Powers of the generator 3 give log/antilog tables for GF(2^8) modulo
	// x^8 + x^4 + x^3 + x + 1.
	var exp [255]byte
	var log [256]int
	x := byte(1)
	for i := range 255 {
		exp[i] = x
		log[x] = i
		x ^= xtime(x) // x·3 = x·2 ⊕ x
	}
	for v := range 256 {
		// Multiplicative inverse (0 maps to 0).
		var inv byte
		if v != 0 {
			inv = exp[(255-log[v])%255]
		}
		// Affine transform: s = inv ⊕ rotl(inv,1) ⊕ rotl(inv,2) ⊕
		// rotl(inv,3) ⊕ rotl(inv,4) ⊕ 0x63.
		s := inv ^ rotl8(inv, 1) ^ rotl8(inv, 2) ^ rotl8(inv, 3) ^ rotl8(inv, 4) ^ 0x63
		s2 := xtime(s)
		s3 := s2 ^ s
		w := uint32(s2)<<24 | uint32(s)<<16 | uint32(s)<<8 | uint32(s3)
		te0[v] = w
		te1[v] = w>>8 | w<<24
		te2[v] = w>>16 | w<<16
		te3[v] = w>>24 | w<<8
	}
}

// xtime multiplies by x (that is, 2) in GF(2^8).
func xtime(b byte) byte {
	return b<<1 ^ (b>>7)*0x1b
}

func rotl8(b byte, n uint) byte {
	return b<<n | b>>(8-n)
}

// roundKeys are the three AEZ round keys I, J, L as big-endian column words,
// the form the table round consumes.
type roundKeys [3][4]uint32

func (rk *roundKeys) load(k *[3][16]byte) {
	for i := range rk {
		for c := range 4 {
			rk[i][c] = binary.BigEndian.Uint32(k[i][4*c:])
		}
	}
}

// aesRound is one AESENC: s ← MixColumns(ShiftRows(SubBytes(s))) ⊕ k. The
// state is four big-endian column words; ShiftRows appears as the diagonal
// choice of source columns.
func aesRound(s0, s1, s2, s3 uint32, k *[4]uint32) (uint32, uint32, uint32, uint32) {
	t0 := te0[s0>>24] ^ te1[s1>>16&0xff] ^ te2[s2>>8&0xff] ^ te3[s3&0xff] ^ k[0]
	t1 := te0[s1>>24] ^ te1[s2>>16&0xff] ^ te2[s3>>8&0xff] ^ te3[s0&0xff] ^ k[1]
	t2 := te0[s2>>24] ^ te1[s3>>16&0xff] ^ te2[s0>>8&0xff] ^ te3[s1&0xff] ^ k[2]
	t3 := te0[s3>>24] ^ te1[s0>>16&0xff] ^ te2[s1>>8&0xff] ^ te3[s2&0xff] ^ k[3]
	return t0, t1, t2, t3
}

// aesRoundZero is aesRound with an all-zero round key.
func aesRoundZero(s0, s1, s2, s3 uint32) (uint32, uint32, uint32, uint32) {
	t0 := te0[s0>>24] ^ te1[s1>>16&0xff] ^ te2[s2>>8&0xff] ^ te3[s3&0xff]
	t1 := te0[s1>>24] ^ te1[s2>>16&0xff] ^ te2[s3>>8&0xff] ^ te3[s0&0xff]
	t2 := te0[s2>>24] ^ te1[s3>>16&0xff] ^ te2[s0>>8&0xff] ^ te3[s1&0xff]
	t3 := te0[s3>>24] ^ te1[s0>>16&0xff] ^ te2[s1>>8&0xff] ^ te3[s2&0xff]
	return t0, t1, t2, t3
}

// loadXor reads the block src ⊕ tw as four big-endian column words.
func loadXor(src, tw *block) (uint32, uint32, uint32, uint32) {
	return binary.BigEndian.Uint32(src[0:]) ^ binary.BigEndian.Uint32(tw[0:]),
		binary.BigEndian.Uint32(src[4:]) ^ binary.BigEndian.Uint32(tw[4:]),
		binary.BigEndian.Uint32(src[8:]) ^ binary.BigEndian.Uint32(tw[8:]),
		binary.BigEndian.Uint32(src[12:]) ^ binary.BigEndian.Uint32(tw[12:])
}

func store(dst *block, s0, s1, s2, s3 uint32) {
	binary.BigEndian.PutUint32(dst[0:], s0)
	binary.BigEndian.PutUint32(dst[4:], s1)
	binary.BigEndian.PutUint32(dst[8:], s2)
	binary.BigEndian.PutUint32(dst[12:], s3)
}

// aes4Generic computes dst = AES4_K(src ⊕ tw): four rounds with round keys
// J, I, L and 0 (the spec's key vector (0, J, I, L, 0); the leading zero
// key is the whitening that tw already provides).
func aes4Generic(rk *roundKeys, dst, src, tw *block) {
	s0, s1, s2, s3 := loadXor(src, tw)
	s0, s1, s2, s3 = aesRound(s0, s1, s2, s3, &rk[1]) // J
	s0, s1, s2, s3 = aesRound(s0, s1, s2, s3, &rk[0]) // I
	s0, s1, s2, s3 = aesRound(s0, s1, s2, s3, &rk[2]) // L
	s0, s1, s2, s3 = aesRoundZero(s0, s1, s2, s3)     // 0
	store(dst, s0, s1, s2, s3)
}

// aes10Generic computes dst = AES10_K(src ⊕ tw): ten rounds with round keys
// I, J, L, I, J, L, I, J, L, I (the spec's (0, I, J, L, I, J, L, I, J, L, I)).
// Unlike real AES the last round keeps MixColumns.
func aes10Generic(rk *roundKeys, dst, src, tw *block) {
	s0, s1, s2, s3 := loadXor(src, tw)
	for range 3 {
		s0, s1, s2, s3 = aesRound(s0, s1, s2, s3, &rk[0])
		s0, s1, s2, s3 = aesRound(s0, s1, s2, s3, &rk[1])
		s0, s1, s2, s3 = aesRound(s0, s1, s2, s3, &rk[2])
	}
	s0, s1, s2, s3 = aesRound(s0, s1, s2, s3, &rk[0])
	store(dst, s0, s1, s2, s3)
}

// pass1Generic is the portable form of one batch of AEZ-core's first pass
// (see state.pass1): for each of the n ≤ 8 pairs (X_i, X'_i) at in,
//
//	W_i  = X_i  ⊕ E^{1,i}(X'_i)    (tweak jl[k] ⊕ ipow = J ⊕ 2^⌈i/8⌉I ⊕ (i mod 8)L)
//	X*_i = X'_i ⊕ E^{0,0}(W_i)     (tweak I)
//
// writing (W_i, X*_i) to out and folding X*_i into x.
func pass1Generic(rk *roundKeys, key *[3][16]byte, jl *[8]block, ipow *block, in, out []byte, x *block, n int) {
	var a, b, t, tw block
	for k := range n {
		p := in[32*k : 32*k+32]
		copy(a[:], p[:16])
		copy(b[:], p[16:])
		xorBlock(&tw, &jl[k], ipow)
		aes4Generic(rk, &t, &b, &tw)
		xorBlock(&a, &a, &t) // W_i
		aes4Generic(rk, &t, &a, &key[0])
		xorBlock(&b, &b, &t) // X*_i
		xorBlock(x, x, &b)
		q := out[32*k : 32*k+32]
		copy(q[:16], a[:])
		copy(q[16:], b[:])
	}
	wipeBlock(&a)
	wipeBlock(&b)
	wipeBlock(&t)
	wipeBlock(&tw)
}

// pass2Generic is the portable form of one batch of AEZ-core's second pass
// (see state.pass2): for each of the n ≤ 8 pairs (W_i, X*_i) at out,
//
//	S'  = E^{2,i}(S)               (AES4 of the E^{1,i} tweak ⊕ s2, s2 = S ⊕ 3J)
//	Z   = W_i ⊕ S',  Z' = X*_i ⊕ S',  Y ← Y ⊕ Z
//	A   = Z  ⊕ E^{0,0}(Z')
//	B   = Z' ⊕ E^{1,i}(A)
//
// writing (B, A) back to out.
func pass2Generic(rk *roundKeys, key *[3][16]byte, jl *[8]block, ipow, s2 *block, out []byte, y *block, n int) {
	var z, zp, t, tw block
	for k := range n {
		q := out[32*k : 32*k+32]
		xorBlock(&tw, &jl[k], ipow)
		aes4Generic(rk, &t, s2, &tw) // S'
		copy(z[:], q[:16])
		copy(zp[:], q[16:])
		xorBlock(&z, &z, &t)
		xorBlock(&zp, &zp, &t)
		xorBlock(y, y, &z)
		aes4Generic(rk, &t, &zp, &key[0])
		xorBlock(&z, &z, &t) // A
		aes4Generic(rk, &t, &z, &tw)
		xorBlock(&zp, &zp, &t) // B
		copy(q[:16], zp[:])
		copy(q[16:], z[:])
	}
	wipeBlock(&z)
	wipeBlock(&zp)
	wipeBlock(&t)
	wipeBlock(&tw)
}
