//go:build !amd64 || purego

package aez

// useAESNI is always false without the amd64 assembly; the portable round
// in aes_generic.go does all the work.
var useAESNI = false

func aes4NI(key *[3][16]byte, dst, src, tw *[16]byte) {
	panic("aez: no AES-NI support")
}

func aes10NI(key *[3][16]byte, dst, src, tw *[16]byte) {
	panic("aez: no AES-NI support")
}

func pass1NI(key *[3][16]byte, jl *[8][16]byte, ipow *[16]byte, in, out *byte, x *[16]byte, n int) {
	panic("aez: no AES-NI support")
}

func pass2NI(key *[3][16]byte, jl *[8][16]byte, ipow, s2 *[16]byte, out *byte, y *[16]byte, n int) {
	panic("aez: no AES-NI support")
}
