//go:build amd64 && !purego

package aez

import "golang.org/x/sys/cpu"

// useAESNI selects the AES-NI routines in aes_amd64.s. It is a variable so
// that tests can run every vector through the portable round as well.
var useAESNI = cpu.X86.HasAES && cpu.X86.HasSSE2

// aes4NI computes dst = AES4(src ⊕ tw) with the round keys J, I, L, 0 taken
// from key = (I, J, L).
//
//go:noescape
func aes4NI(key *[3][16]byte, dst, src, tw *[16]byte)

// aes10NI computes dst = AES10(src ⊕ tw) with the round keys I, J, L, I, J,
// L, I, J, L, I.
//
//go:noescape
func aes10NI(key *[3][16]byte, dst, src, tw *[16]byte)

// pass1NI is pass1Generic for n ≤ 8 pairs at in and out (which may be the
// same memory), four pairs interleaved at a time.
//
//go:noescape
func pass1NI(key *[3][16]byte, jl *[8][16]byte, ipow *[16]byte, in, out *byte, x *[16]byte, n int)

// pass2NI is pass2Generic for n ≤ 8 pairs at out, four pairs interleaved at
// a time.
//
//go:noescape
func pass2NI(key *[3][16]byte, jl *[8][16]byte, ipow, s2 *[16]byte, out *byte, y *[16]byte, n int)
