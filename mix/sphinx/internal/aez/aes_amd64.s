//go:build amd64 && !purego

#include "textflag.h"

// AES-NI forms of AEZ's AES4 and AES10 (spec §1.5). AESENC is exactly the
// AEZ round: SubBytes, ShiftRows, MixColumns, then XOR of the round key.
//
// Register conventions in every routine:
//	X0 = I, X1 = J, X2 = L (the extracted key), X3 = 0.
// AES4 uses the round keys J, I, L, 0; AES10 uses I, J, L three times and
// then I. Every routine clears the XMM registers it used before returning,
// so no key or data bytes are left behind in them.

#define AES4(a) \
	AESENC X1, a; AESENC X0, a; AESENC X2, a; AESENC X3, a

// Four independent AES4 computations interleaved, so that the AESENC
// latency is hidden.
#define AES4X4(a, b, c, d) \
	AESENC X1, a; AESENC X1, b; AESENC X1, c; AESENC X1, d; \
	AESENC X0, a; AESENC X0, b; AESENC X0, c; AESENC X0, d; \
	AESENC X2, a; AESENC X2, b; AESENC X2, c; AESENC X2, d; \
	AESENC X3, a; AESENC X3, b; AESENC X3, c; AESENC X3, d

#define LOADKEY(p) \
	MOVOU 0(p), X0; MOVOU 16(p), X1; MOVOU 32(p), X2; PXOR X3, X3

#define CLEAR8 \
	PXOR X0, X0; PXOR X1, X1; PXOR X2, X2; PXOR X3, X3; \
	PXOR X4, X4; PXOR X5, X5; PXOR X6, X6; PXOR X7, X7

#define CLEAR16 \
	CLEAR8; \
	PXOR X8, X8; PXOR X9, X9; PXOR X10, X10; PXOR X11, X11; \
	PXOR X12, X12; PXOR X13, X13; PXOR X14, X14; PXOR X15, X15

// func aes4NI(key *[3][16]byte, dst, src, tw *[16]byte)
TEXT ·aes4NI(SB), NOSPLIT, $0-32
	MOVQ  key+0(FP), AX
	MOVQ  dst+8(FP), BX
	MOVQ  src+16(FP), CX
	MOVQ  tw+24(FP), DX
	LOADKEY(AX)
	MOVOU (CX), X4
	MOVOU (DX), X5
	PXOR  X5, X4
	AES4(X4)
	MOVOU X4, (BX)
	CLEAR8
	RET

// func aes10NI(key *[3][16]byte, dst, src, tw *[16]byte)
TEXT ·aes10NI(SB), NOSPLIT, $0-32
	MOVQ   key+0(FP), AX
	MOVQ   dst+8(FP), BX
	MOVQ   src+16(FP), CX
	MOVQ   tw+24(FP), DX
	LOADKEY(AX)
	MOVOU  (CX), X4
	MOVOU  (DX), X5
	PXOR   X5, X4
	AESENC X0, X4
	AESENC X1, X4
	AESENC X2, X4
	AESENC X0, X4
	AESENC X1, X4
	AESENC X2, X4
	AESENC X0, X4
	AESENC X1, X4
	AESENC X2, X4
	AESENC X0, X4
	MOVOU  X4, (BX)
	CLEAR8
	RET

// func pass1NI(key *[3][16]byte, jl *[8][16]byte, ipow *[16]byte, in, out *byte, x *[16]byte, n int)
//
// For each pair (X_i, X'_i) at in, with tw_i = jl_i ⊕ ipow:
//	W_i  = X_i  ⊕ AES4(X'_i ⊕ tw_i)   (E^{1,i})
//	X*_i = X'_i ⊕ AES4(W_i ⊕ I)       (E^{0,0})
// out gets (W_i, X*_i), *x accumulates X*_i. Every input block is read
// before the output block at the same offset is written, so in == out works.
TEXT ·pass1NI(SB), NOSPLIT, $0-56
	MOVQ  key+0(FP), AX
	MOVQ  jl+8(FP), DX
	MOVQ  ipow+16(FP), R8
	MOVQ  in+24(FP), SI
	MOVQ  out+32(FP), DI
	MOVQ  x+40(FP), BX
	MOVQ  n+48(FP), CX
	LOADKEY(AX)
	MOVOU (BX), X4
	MOVOU (R8), X13

p1loop4:
	CMPQ  CX, $4
	JB    p1tail

	// E^{1,i}(X'_i) for four pairs.
	MOVOU 16(SI), X5
	MOVOU 48(SI), X6
	MOVOU 80(SI), X7
	MOVOU 112(SI), X8
	MOVOU 0(DX), X9
	MOVOU 16(DX), X10
	MOVOU 32(DX), X11
	MOVOU 48(DX), X12
	PXOR  X13, X9
	PXOR  X13, X10
	PXOR  X13, X11
	PXOR  X13, X12
	PXOR  X9, X5
	PXOR  X10, X6
	PXOR  X11, X7
	PXOR  X12, X8
	AES4X4(X5, X6, X7, X8)

	// W_i = X_i ⊕ E^{1,i}(X'_i).
	MOVOU 0(SI), X9
	MOVOU 32(SI), X10
	MOVOU 64(SI), X11
	MOVOU 96(SI), X12
	PXOR  X9, X5
	PXOR  X10, X6
	PXOR  X11, X7
	PXOR  X12, X8
	MOVOU X5, 0(DI)
	MOVOU X6, 32(DI)
	MOVOU X7, 64(DI)
	MOVOU X8, 96(DI)

	// E^{0,0}(W_i).
	PXOR  X0, X5
	PXOR  X0, X6
	PXOR  X0, X7
	PXOR  X0, X8
	AES4X4(X5, X6, X7, X8)

	// X*_i = X'_i ⊕ E^{0,0}(W_i); x ⊕= X*_i.
	MOVOU 16(SI), X9
	MOVOU 48(SI), X10
	MOVOU 80(SI), X11
	MOVOU 112(SI), X12
	PXOR  X9, X5
	PXOR  X10, X6
	PXOR  X11, X7
	PXOR  X12, X8
	MOVOU X5, 16(DI)
	MOVOU X6, 48(DI)
	MOVOU X7, 80(DI)
	MOVOU X8, 112(DI)
	PXOR  X5, X4
	PXOR  X6, X4
	PXOR  X7, X4
	PXOR  X8, X4

	ADDQ  $128, SI
	ADDQ  $128, DI
	ADDQ  $64, DX
	SUBQ  $4, CX
	JMP   p1loop4

p1tail:
	TESTQ CX, CX
	JZ    p1done
	MOVOU 16(SI), X5
	MOVOU 0(DX), X9
	PXOR  X13, X9
	PXOR  X9, X5
	AES4(X5)
	MOVOU 0(SI), X9
	PXOR  X9, X5
	MOVOU X5, 0(DI)
	PXOR  X0, X5
	AES4(X5)
	MOVOU 16(SI), X9
	PXOR  X9, X5
	MOVOU X5, 16(DI)
	PXOR  X5, X4
	ADDQ  $32, SI
	ADDQ  $32, DI
	ADDQ  $16, DX
	DECQ  CX
	JMP   p1tail

p1done:
	MOVOU X4, (BX)
	CLEAR16
	RET

// func pass2NI(key *[3][16]byte, jl *[8][16]byte, ipow, s2 *[16]byte, out *byte, y *[16]byte, n int)
//
// For each pair (W_i, X*_i) at out, with tw_i = jl_i ⊕ ipow and s2 = S ⊕ 3J:
//	S' = AES4(tw_i ⊕ s2)                       (E^{2,i}(S))
//	Z  = W_i ⊕ S', Z' = X*_i ⊕ S', y ⊕= Z
//	A  = Z  ⊕ AES4(Z' ⊕ I)                     (E^{0,0})
//	B  = Z' ⊕ AES4(A ⊕ tw_i)                   (E^{1,i})
// and the pair becomes (B, A). Z and Z' are parked in out between steps.
TEXT ·pass2NI(SB), NOSPLIT, $0-56
	MOVQ  key+0(FP), AX
	MOVQ  jl+8(FP), DX
	MOVQ  ipow+16(FP), R8
	MOVQ  s2+24(FP), SI
	MOVQ  out+32(FP), DI
	MOVQ  y+40(FP), BX
	MOVQ  n+48(FP), CX
	LOADKEY(AX)
	MOVOU (BX), X4
	MOVOU (R8), X15
	MOVOU (SI), X5
	PXOR  X15, X5     // s2 ⊕ ipow: S' input is jl_i ⊕ X5

p2loop4:
	CMPQ  CX, $4
	JB    p2tail

	// S'_i = E^{2,i}(S) for four pairs.
	MOVOU 0(DX), X6
	MOVOU 16(DX), X7
	MOVOU 32(DX), X8
	MOVOU 48(DX), X9
	PXOR  X5, X6
	PXOR  X5, X7
	PXOR  X5, X8
	PXOR  X5, X9
	AES4X4(X6, X7, X8, X9)

	// Z = W ⊕ S' (stored, summed into y); Z' = X* ⊕ S' (stored, kept).
	MOVOU 0(DI), X10
	MOVOU 16(DI), X11
	PXOR  X6, X10
	PXOR  X11, X6
	PXOR  X10, X4
	MOVOU X10, 0(DI)
	MOVOU X6, 16(DI)
	MOVOU 32(DI), X10
	MOVOU 48(DI), X11
	PXOR  X7, X10
	PXOR  X11, X7
	PXOR  X10, X4
	MOVOU X10, 32(DI)
	MOVOU X7, 48(DI)
	MOVOU 64(DI), X10
	MOVOU 80(DI), X11
	PXOR  X8, X10
	PXOR  X11, X8
	PXOR  X10, X4
	MOVOU X10, 64(DI)
	MOVOU X8, 80(DI)
	MOVOU 96(DI), X10
	MOVOU 112(DI), X11
	PXOR  X9, X10
	PXOR  X11, X9
	PXOR  X10, X4
	MOVOU X10, 96(DI)
	MOVOU X9, 112(DI)

	// A = Z ⊕ E^{0,0}(Z').
	PXOR  X0, X6
	PXOR  X0, X7
	PXOR  X0, X8
	PXOR  X0, X9
	AES4X4(X6, X7, X8, X9)
	MOVOU 0(DI), X10
	MOVOU 32(DI), X11
	MOVOU 64(DI), X12
	MOVOU 96(DI), X13
	PXOR  X10, X6
	PXOR  X11, X7
	PXOR  X12, X8
	PXOR  X13, X9

	// B = Z' ⊕ E^{1,i}(A); the pair becomes (B, A).
	MOVOU 0(DX), X10
	MOVOU 16(DX), X11
	MOVOU 32(DX), X12
	MOVOU 48(DX), X13
	PXOR  X15, X10
	PXOR  X15, X11
	PXOR  X15, X12
	PXOR  X15, X13
	PXOR  X6, X10
	PXOR  X7, X11
	PXOR  X8, X12
	PXOR  X9, X13
	AES4X4(X10, X11, X12, X13)
	MOVOU 16(DI), X14
	PXOR  X14, X10
	MOVOU X10, 0(DI)
	MOVOU X6, 16(DI)
	MOVOU 48(DI), X14
	PXOR  X14, X11
	MOVOU X11, 32(DI)
	MOVOU X7, 48(DI)
	MOVOU 80(DI), X14
	PXOR  X14, X12
	MOVOU X12, 64(DI)
	MOVOU X8, 80(DI)
	MOVOU 112(DI), X14
	PXOR  X14, X13
	MOVOU X13, 96(DI)
	MOVOU X9, 112(DI)

	ADDQ  $128, DI
	ADDQ  $64, DX
	SUBQ  $4, CX
	JMP   p2loop4

p2tail:
	TESTQ CX, CX
	JZ    p2done
	MOVOU 0(DX), X6
	PXOR  X5, X6
	AES4(X6)
	MOVOU 0(DI), X10
	MOVOU 16(DI), X11
	PXOR  X6, X10     // Z
	PXOR  X11, X6     // Z'
	PXOR  X10, X4
	MOVOU X6, X11     // keep Z'
	PXOR  X0, X6
	AES4(X6)
	PXOR  X10, X6     // A
	MOVOU 0(DX), X12
	PXOR  X15, X12
	PXOR  X6, X12
	AES4(X12)
	PXOR  X11, X12    // B
	MOVOU X12, 0(DI)
	MOVOU X6, 16(DI)
	ADDQ  $32, DI
	ADDQ  $16, DX
	DECQ  CX
	JMP   p2tail

p2done:
	MOVOU X4, (BX)
	CLEAR16
	RET
