package sphinx

import (
	"encoding/binary"
	"math/bits"
)

// Accumulated blinding for packet creation.
//
// Katzenpost defines hop i's shared secret and group element by repeated
// X25519 (each application clamps its scalar, RFC 7748):
//
//	alpha_0 = X25519(x, 9)        alpha_i = X25519(b_{i-1}, alpha_{i-1})
//	ss_0 = X25519(x, P_0)         ss_i = X25519(b_{i-1}, ... X25519(b_0, X25519(x, P_i)))
//
// which costs i+1 ladders for ss_i. X25519(k, Q) is the u-coordinate of
// [clamp(k)]Q, so with s_i = clamp(x)·clamp(b_0)···clamp(b_{i-1}):
//
//	alpha_i = u([s_i]B)           ss_i = u([s_i]P_i)
//
// For a point Q on the curve (not the twist), every clamped scalar is a
// multiple of 8, so [s_i]Q = [s_i]Q' where Q' is Q's component in the
// prime-order subgroup, and there only s_i mod l matters (l the group
// order). A single X25519 ladder with scalar t computes the same u when
// clamp(t) = t and t = ±s_i (mod l), since u([-s]Q) = u([s]Q). Writing
// m = s_i/8 mod l, the clamped t = 8j with 2^251 <= j < 2^252 works for
// j = m or j = l-m; one of them lies in that range unless m is within
// about 2^125 of 0 or of l (probability about 2^-126). In that case
// NewPacket falls back to the repeated ladders above, so the output is
// byte-identical to Katzenpost's for every honest public key. (For a
// "public key" on the twist the two methods differ; no node has such a
// key.)
//
// The arithmetic mod l below is constant time: the scalars are the
// sender's ephemeral secret and the blinding factors.

// scalar is an integer below 2^256 as four little-endian 64-bit limbs.
type scalar [4]uint64

var (
	// groupOrder is l = 2^252 + 27742317777372353535851937790883648493.
	groupOrder = scalar{0x5812631a5cf5d3ed, 0x14def9dea2f79cd6, 0, 0x1000000000000000}
	// montR2 is R^2 mod l with R = 2^256.
	montR2 = scalar{0xa40611e3449c0f01, 0xd00e1ba768859347, 0xceec73d217f5be65, 0x0399411b7c309a3d}
	// inv8 is 8^-1 mod l.
	inv8 = scalar{0x6106e529e2dc2f79, 0x07d39db37d1cdad0, 0, 0x0600000000000000}
)

// montNeg is -l^-1 mod 2^64.
const montNeg = 0xd2b51da312547e1b

func (s *scalar) setBytes(b *[32]byte) {
	for i := range s {
		s[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
}

func (s *scalar) putBytes(b *[32]byte) {
	for i := range s {
		binary.LittleEndian.PutUint64(b[8*i:], s[i])
	}
}

// montMul sets z = a·b·R^-1 mod l. It needs a·b < l·R, which holds when
// a < R and b < l; the result is below l.
func montMul(z, a, b *scalar) {
	var t [6]uint64
	for i := range 4 {
		// t += a·b[i]
		var c uint64
		for j := range 4 {
			hi, lo := bits.Mul64(a[j], b[i])
			var cc uint64
			lo, cc = bits.Add64(lo, t[j], 0)
			hi += cc
			lo, cc = bits.Add64(lo, c, 0)
			hi += cc
			t[j], c = lo, hi
		}
		var cc uint64
		t[4], cc = bits.Add64(t[4], c, 0)
		t[5] = cc
		// t = (t + m·l) / 2^64 with m chosen to clear the low limb.
		m := t[0] * montNeg
		hi, lo := bits.Mul64(m, groupOrder[0])
		_, cc = bits.Add64(lo, t[0], 0)
		c = hi + cc
		for j := 1; j < 4; j++ {
			hi, lo = bits.Mul64(m, groupOrder[j])
			lo, cc = bits.Add64(lo, t[j], 0)
			hi += cc
			lo, cc = bits.Add64(lo, c, 0)
			hi += cc
			t[j-1], c = lo, hi
		}
		t[3], cc = bits.Add64(t[4], c, 0)
		t[4] = t[5] + cc
	}
	// t < 2l: subtract l once if that does not borrow.
	var d scalar
	var borrow uint64
	for j := range 4 {
		d[j], borrow = bits.Sub64(t[j], groupOrder[j], borrow)
	}
	_, borrow = bits.Sub64(t[4], 0, borrow)
	keep := -borrow // all ones if t < l: keep t
	for j := range 4 {
		z[j] = (t[j] & keep) | (d[j] &^ keep)
	}
}

// accumulator holds s = clamp(x)·clamp(b_0)···clamp(b_{i-1}) mod l, in
// Montgomery form (s·R mod l).
type accumulator struct {
	m scalar
}

func clampScalar(k *[32]byte) {
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
}

// init sets the accumulator to clamp(x).
func (a *accumulator) init(x *[32]byte) {
	var c [32]byte
	c = *x
	clampScalar(&c)
	var v scalar
	v.setBytes(&c)
	montMul(&a.m, &v, &montR2) // clamp(x)·R mod l
	clear(c[:])
	v = scalar{}
}

// mul multiplies the accumulator by clamp(b).
func (a *accumulator) mul(b *[32]byte) {
	var c [32]byte
	c = *b
	clampScalar(&c)
	var v, vm scalar
	v.setBytes(&c)
	montMul(&vm, &v, &montR2) // clamp(b)·R mod l
	montMul(&a.m, &a.m, &vm)  // s·clamp(b)·R mod l
	clear(c[:])
	v, vm = scalar{}, scalar{}
}

// ladderScalar sets t to a clamped scalar with X25519(t, Q) = u([s]Q) for
// every Q on the curve, and reports false in the rare case (about 2^-126)
// that no clamped scalar is congruent to ±s mod l.
func (a *accumulator) ladderScalar(t *[32]byte) bool {
	var m, n scalar
	montMul(&m, &a.m, &inv8) // s/8 mod l
	// n = l - m
	var borrow uint64
	for j := range 4 {
		n[j], borrow = bits.Sub64(groupOrder[j], m[j], borrow)
	}
	// j in [2^251, 2^252) exactly when bits 251.. of j are 1 (j < 2^253).
	okM := (m[3] >> 59) ^ 1 // 0 iff m>>251 == 1
	okN := (n[3] >> 59) ^ 1
	useM := ctEqZero(okM)
	useN := ctEqZero(okN)
	mask := -useM // all ones if m is in range
	var j scalar
	for i := range 4 {
		j[i] = (m[i] & mask) | (n[i] &^ mask)
	}
	// t = 8j
	j[3] = j[3]<<3 | j[2]>>61
	j[2] = j[2]<<3 | j[1]>>61
	j[1] = j[1]<<3 | j[0]>>61
	j[0] <<= 3
	j.putBytes(t)
	ok := useM|useN == 1
	m, n, j = scalar{}, scalar{}, scalar{}
	return ok
}

// ctEqZero returns 1 if v == 0 and 0 otherwise, in constant time.
func ctEqZero(v uint64) uint64 {
	return 1 ^ ((v | -v) >> 63)
}

func (a *accumulator) wipe() { a.m = scalar{} }
