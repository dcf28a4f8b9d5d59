package aez

// core implements AEZ-core (spec §1.5) for |in| ≥ 32 bytes; d = 0
// enciphers and d = 1 deciphers (the two differ only in the tweaks 1+d and
// 2-d). out may alias in exactly.
//
// The input is parsed as X_1 X'_1 … X_m X'_m X_uv X_x X_y with 16-byte
// blocks, |X_uv| < 32 and |X_x| = |X_y| = 16. The first pass turns each pair
// into (W_i, X*_i) and sums the X*_i (and the fragment X_uv) into X; the
// middle computes S from X_x, X_y, Δ and X; the second pass uses S to finish
// each pair and sums into Y, which the last two blocks absorb.
func (s *state) core(delta *block, in, out []byte, d int) {
	n := len(in)
	pairs := 32 * (n/32 - 1) // bytes of X_1 X'_1 … X_m X'_m
	frag := n - pairs - 32   // |X_uv|, 0…31

	var x, y, sx, sy, sum, t, u block

	// The E^{1,i} tweaks of both passes, less their 2^⌈i/8⌉I term.
	for k := range s.jl {
		xorBlock(&s.jl[k], &s.key[1], &s.l[(k+1)%8])
	}

	// Pass 1 over the pairs: out holds (W_i, X*_i), X = ⊕ X*_i.
	s.pass1(in[:pairs], out[:pairs], &x)

	// X ← X ⊕ E^{0,4}(X_u) ⊕ E^{0,5}(X_v 10*) when |X_uv| ≥ 16, or
	// X ← X ⊕ E^{0,4}(X_uv 10*) when 0 < |X_uv| < 16.
	uv := in[pairs : pairs+frag]
	if frag >= 16 {
		s.e0(&t, (*block)(uv[:16]), 4)
		xorBlock(&x, &x, &t)
		padBlock(&u, uv[16:])
		s.e0(&t, &u, 5)
		xorBlock(&x, &x, &t)
	} else if frag > 0 {
		padBlock(&u, uv)
		s.e0(&t, &u, 4)
		xorBlock(&x, &x, &t)
	}

	// S_x ← X_x ⊕ Δ ⊕ X ⊕ E^{0,1+d}(X_y); S_y ← X_y ⊕ E^{-1,1+d}(S_x);
	// S ← S_x ⊕ S_y.
	copy(sx[:], in[n-32:n-16])
	copy(sy[:], in[n-16:])
	s.e0(&t, &sy, 1+d)
	xorBlock(&sx, &sx, delta)
	xorBlock(&sx, &sx, &x)
	xorBlock(&sx, &sx, &t)
	s.eNeg(&t, &sx, 1+d)
	xorBlock(&sy, &sy, &t)
	xorBlock(&sum, &sx, &sy)

	// Pass 2 over the pairs: out gets the final pairs, Y = ⊕ Z_i.
	s.pass2(out[:pairs], &sum, &y)

	// The fragment is enciphered with E^{-1,4}(S) and E^{-1,5}(S) as
	// keystream, and its output is summed into Y like pass 1 summed its
	// input into X.
	if frag >= 16 {
		s.eNeg(&t, &sum, 4)
		xorBlock(&u, (*block)(uv[:16]), &t)
		copy(out[pairs:], u[:])
		s.e0(&t, &u, 4)
		xorBlock(&y, &y, &t)

		v := frag - 16
		s.eNeg(&t, &sum, 5)
		clear(u[:])
		for k := range v {
			u[k] = uv[16+k] ^ t[k]
		}
		copy(out[pairs+16:], u[:v])
		u[v] = 0x80
		s.e0(&t, &u, 5)
		xorBlock(&y, &y, &t)
	} else if frag > 0 {
		s.eNeg(&t, &sum, 4)
		clear(u[:])
		for k := range frag {
			u[k] = uv[k] ^ t[k]
		}
		copy(out[pairs:], u[:frag])
		u[frag] = 0x80
		s.e0(&t, &u, 4)
		xorBlock(&y, &y, &t)
	}

	// C_y ← S_x ⊕ E^{-1,2-d}(S_y); C_x ← S_y ⊕ Δ ⊕ Y ⊕ E^{0,2-d}(C_y).
	s.eNeg(&t, &sy, 2-d)
	xorBlock(&sx, &sx, &t) // C_y
	s.e0(&t, &sx, 2-d)
	xorBlock(&sy, &sy, delta)
	xorBlock(&sy, &sy, &y)
	xorBlock(&sy, &sy, &t) // C_x
	copy(out[n-32:], sy[:])
	copy(out[n-16:], sx[:])

	for _, b := range []*block{&x, &y, &sx, &sy, &sum, &t, &u} {
		wipeBlock(b)
	}
}

// padBlock sets dst = src ‖ 10* for |src| < 16.
func padBlock(dst *block, src []byte) {
	clear(dst[:])
	copy(dst[:], src)
	dst[len(src)] = 0x80
}

// pass1 runs AEZ-core's first pass over whole pairs (len(in) a multiple of
// 32): for pair i, W_i = X_i ⊕ E^{1,i}(X'_i) and X*_i = X'_i ⊕ E^{0,0}(W_i);
// out gets (W_i, X*_i) and x accumulates X*_i.
//
// E^{1,i} has tweak J ⊕ 2^⌈i/8⌉I ⊕ (i mod 8)L. The pairs go in batches of 8
// (i = 8g+1 … 8g+8) within which 2^⌈i/8⌉I = 2^{g+1}I is constant: a batch
// gets the table s.jl of J ⊕ (i mod 8)L and the current power of I, which
// is doubled between batches.
func (s *state) pass1(in, out []byte, x *block) {
	var ipow block
	double(&ipow, &s.key[0]) // 2I for i = 1…8
	for len(in) > 0 {
		n := min(len(in)/32, 8)
		if s.ni {
			pass1NI(&s.key, &s.jl, &ipow, &in[0], &out[0], x, n)
		} else {
			pass1Generic(&s.rk, &s.key, &s.jl, &ipow, in, out, x, n)
		}
		in, out = in[32*n:], out[32*n:]
		double(&ipow, &ipow)
	}
	wipeBlock(&ipow)
}

// pass2 runs AEZ-core's second pass over the (W_i, X*_i) pairs in out:
// S' = E^{2,i}(S), Z = W_i ⊕ S', Z' = X*_i ⊕ S', Y ← Y ⊕ Z,
// A = Z ⊕ E^{0,0}(Z'), B = Z' ⊕ E^{1,i}(A), and the pair becomes (B, A).
// E^{2,i}(S) = AES4(S ⊕ 2J ⊕ 2^⌈i/8⌉I ⊕ (i mod 8)L), which is AES4 of the
// E^{1,i} tweak ⊕ S ⊕ 3J, so the batches use the same tables as pass1.
func (s *state) pass2(out []byte, sum, y *block) {
	var ipow, s2 block
	double(&ipow, &s.key[0])
	double(&s2, &s.key[1])
	xorBlock(&s2, &s2, &s.key[1])
	xorBlock(&s2, &s2, sum) // S ⊕ 3J
	for len(out) > 0 {
		n := min(len(out)/32, 8)
		if s.ni {
			pass2NI(&s.key, &s.jl, &ipow, &s2, &out[0], y, n)
		} else {
			pass2Generic(&s.rk, &s.key, &s.jl, &ipow, &s2, out, y, n)
		}
		out = out[32*n:]
		double(&ipow, &ipow)
	}
	wipeBlock(&ipow)
	wipeBlock(&s2)
}
