package aez

// tiny implements AEZ-tiny (spec §1.5) for 1 ≤ |in| < 32 bytes: a balanced
// Feistel network on the two halves of the input (each 4·|in| bits, so they
// may end in a half byte), with round function
//
//	F(j, R) = E^{0,w}(Δ ⊕ R10* ⊕ [j]_128) truncated to the half's length,
//
// w = 7 below 16 bytes and 6 from 16 on. The number of rounds is 24 for one
// byte, 16 for two, 10 below 16 bytes and 8 otherwise. d = 0 enciphers, d = 1
// deciphers (the same rounds with the round numbers reversed). Below 16
// bytes the first output bit is additionally masked with a bit of
// E^{0,3}(Δ ⊕ (C ∨ 10^127)); a Feistel network alone yields only even
// permutations of such small domains, and this step removes that bias.
// out may alias in exactly.
func (s *state) tiny(delta *block, in, out []byte, d int) {
	n := len(in)
	var rounds, w int
	switch {
	case n == 1:
		rounds, w = 24, 7
	case n == 2:
		rounds, w = 16, 7
	case n < 16:
		rounds, w = 10, 7
	default:
		rounds, w = 8, 6
	}

	var buf [32]byte
	var l, r, t, tw block
	copy(buf[:], in)
	if d == 1 && n < 16 {
		s.tinyMask(delta, &buf, n)
	}

	// Split into L (first 4n bits) and R (last 4n bits), left-aligned with
	// zeros after them.
	half := (n + 1) / 2 // bytes touched by one half
	copy(l[:half], buf[:half])
	if n%2 == 0 {
		copy(r[:half], buf[half:n])
	} else {
		l[half-1] &= 0xf0
		for k := range half {
			r[k] = buf[n/2+k]<<4 | buf[n/2+k+1]>>4
		}
	}
	// mask keeps the 4n bits of a half in its last byte.
	last, mask, pad := half-1, byte(0xff), byte(0x80)
	if n%2 == 1 {
		mask, pad = 0xf0, 0x08
	}

	// The tweak of E^{0,w} is 2I ⊕ wL (⌈w/8⌉ = 1).
	double(&tw, &s.key[0])
	xorBlock(&tw, &tw, &s.l[w])

	// round sets dst ← dst ⊕ F(j, src).
	round := func(dst, src *block, j int) {
		// src is zero after its 4n bits, so padding only sets one bit,
		// which sits just past the half: in byte half for even n, in the
		// low nibble of byte half-1 for odd n.
		t = *src
		if n%2 == 0 {
			t[half] = pad
		} else {
			t[last] |= pad
		}
		xorBlock(&t, &t, delta)
		t[15] ^= byte(j)
		s.aes4(&t, &t, &tw)
		for k := range half {
			dst[k] ^= t[k]
		}
		dst[last] &= mask
	}
	if d == 0 {
		for j := 0; j < rounds; j += 2 {
			round(&l, &r, j)
			round(&r, &l, j+1)
		}
	} else {
		for j := rounds - 1; j > 0; j -= 2 {
			round(&l, &r, j)
			round(&r, &l, j-1)
		}
	}

	// Output R ‖ L.
	clear(buf[:])
	if n%2 == 0 {
		copy(buf[:half], r[:half])
		copy(buf[half:n], l[:half])
	} else {
		copy(buf[:half], r[:half]) // byte half-1 holds R's last nibble on top
		for k := range half {
			buf[n/2+k] |= l[k] >> 4
			buf[n/2+k+1] |= l[k] << 4
		}
	}
	if d == 0 && n < 16 {
		s.tinyMask(delta, &buf, n)
	}
	copy(out, buf[:n])

	wipeBytes(buf[:])
	for _, b := range []*block{&l, &r, &t, &tw} {
		wipeBlock(b)
	}
}

// tinyMask flips the first bit of the n-byte string in buf (n < 16) by the
// first bit of E^{0,3}(Δ ⊕ (buf ∨ 10^127)): buf with its first bit forced
// to one, so the mask is the same before and after the flip.
func (s *state) tinyMask(delta *block, buf *[32]byte, n int) {
	var t block
	copy(t[:], buf[:n])
	t[0] |= 0x80
	xorBlock(&t, &t, delta)
	s.e0(&t, &t, 3)
	buf[0] ^= t[0] & 0x80
	wipeBlock(&t)
}
