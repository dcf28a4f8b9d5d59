package aez

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// testLengths covers the empty message, AEZ-tiny (odd and even, both sides
// of 16 bytes), the AEZ-core boundaries (no pairs, a fragment of each size
// class) and several 8-pair batches.
var testLengths = []int{0, 1, 2, 3, 7, 15, 16, 17, 30, 31, 32, 33, 47, 48, 63, 64, 65, 95, 96, 127, 128, 255, 256, 257, 300, 511, 512, 1000, 2048, 2600}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestRoundTrip checks Decrypt(Encrypt(m)) = m and the output length for
// every length class, key length and tag length, on both paths.
func TestRoundTrip(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, keyLen := range []int{0, 16, 32, 48, 64} {
			for _, tau := range []int{0, 1, 16, 33} {
				for _, n := range testLengths {
					key := randBytes(r, keyLen)
					nonce := randBytes(r, 16)
					ad := [][]byte{randBytes(r, 7), nil, randBytes(r, 40)}
					m := randBytes(r, n)
					c := Encrypt(key, nonce, ad, tau, m, nil)
					if len(c) != n+tau {
						t.Fatalf("key %d, tau %d, |m| %d: |c| = %d", keyLen, tau, n, len(c))
					}
					got, ok := Decrypt(key, nonce, ad, tau, c, nil)
					if !ok || !bytes.Equal(got, m) {
						t.Fatalf("key %d, tau %d, |m| %d: round trip failed (ok=%v)", keyLen, tau, n, ok)
					}
					if n >= 4 && tau == 0 && bytes.Equal(c, m) {
						t.Fatalf("|m| %d: ciphertext equals plaintext", n)
					}
				}
			}
		}
	})
}

// TestPathsAgree compares the AES-NI and portable paths on random inputs of
// many lengths, well past the lengths the vectors reach.
func TestPathsAgree(t *testing.T) {
	if !useAESNI {
		t.Skip("no AES-NI on this machine")
	}
	defer func(v bool) { useAESNI = v }(useAESNI)
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 5000; n += 1 + n/8 {
		key := randBytes(r, 48)
		nonce := randBytes(r, 16)
		m := randBytes(r, n)
		for _, tau := range []int{0, 16} {
			useAESNI = true
			a := Encrypt(key, nonce, nil, tau, m, nil)
			useAESNI = false
			b := Encrypt(key, nonce, nil, tau, m, nil)
			if !bytes.Equal(a, b) {
				t.Fatalf("|m| %d, tau %d: AES-NI and portable ciphertexts differ", n, tau)
			}
		}
	}
}

// TestRoundFunctions checks the assembly AES4/AES10 against the portable
// round, and the known AES S-box values the tables are built from.
func TestRoundFunctions(t *testing.T) {
	// S(0x00) = 0x63, S(0x01) = 0x7c, S(0x53) = 0xed (FIPS-197 §5.1.1).
	for _, c := range []struct{ in, out byte }{{0x00, 0x63}, {0x01, 0x7c}, {0x53, 0xed}, {0xff, 0x16}} {
		if got := byte(te0[c.in] >> 16); got != c.out {
			t.Errorf("S(%#02x) = %#02x, want %#02x", c.in, got, c.out)
		}
	}
	if !useAESNI {
		t.Skip("no AES-NI on this machine")
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		var key [3][16]byte
		var rk roundKeys
		var src, tw, a, b block
		copy(key[0][:], randBytes(r, 16))
		copy(key[1][:], randBytes(r, 16))
		copy(key[2][:], randBytes(r, 16))
		copy(src[:], randBytes(r, 16))
		copy(tw[:], randBytes(r, 16))
		rk.load(&key)
		aes4NI(&key, &a, &src, &tw)
		aes4Generic(&rk, &b, &src, &tw)
		if a != b {
			t.Fatalf("AES4: asm %x, portable %x", a, b)
		}
		aes10NI(&key, &a, &src, &tw)
		aes10Generic(&rk, &b, &src, &tw)
		if a != b {
			t.Fatalf("AES10: asm %x, portable %x", a, b)
		}
	}
}

// TestTamper flips every bit of the ciphertext (sampled for long ones), the
// nonce, the associated data and the key, and changes the AD vector's shape
// and the tag length; every change must be rejected and leave no plaintext.
func TestTamper(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		const tau = 16
		for _, n := range []int{0, 1, 5, 15, 16, 17, 31, 32, 33, 64, 100, 2048} {
			key := randBytes(r, 48)
			nonce := randBytes(r, 16)
			ad := [][]byte{randBytes(r, 3), randBytes(r, 20)}
			m := randBytes(r, n)
			c := Encrypt(key, nonce, ad, tau, m, nil)

			reject := func(what string, key, nonce []byte, ad [][]byte, tau int, c []byte) {
				t.Helper()
				dst := make([]byte, 0, len(c))
				got, ok := Decrypt(key, nonce, ad, tau, c, dst)
				if ok || got != nil {
					t.Fatalf("|m| %d: %s accepted", n, what)
				}
				if !bytes.Equal(dst[:cap(dst)], make([]byte, cap(dst))) {
					t.Fatalf("|m| %d: %s left plaintext in dst", n, what)
				}
			}

			step := 1
			if len(c) > 64 {
				step = 13 // a prime stride still hits every byte position class
			}
			for bit := 0; bit < 8*len(c); bit += step {
				cc := bytes.Clone(c)
				cc[bit/8] ^= 1 << (bit % 8)
				reject(fmt.Sprintf("ciphertext bit %d", bit), key, nonce, ad, tau, cc)
			}
			for bit := range 8 * len(nonce) {
				nn := bytes.Clone(nonce)
				nn[bit/8] ^= 1 << (bit % 8)
				reject(fmt.Sprintf("nonce bit %d", bit), key, nn, ad, tau, c)
			}
			for i := range ad {
				for bit := range 8 * len(ad[i]) {
					aa := [][]byte{bytes.Clone(ad[0]), bytes.Clone(ad[1])}
					aa[i][bit/8] ^= 1 << (bit % 8)
					reject(fmt.Sprintf("AD[%d] bit %d", i, bit), key, nonce, aa, tau, c)
				}
			}
			for bit := 0; bit < 8*len(key); bit += 7 {
				kk := bytes.Clone(key)
				kk[bit/8] ^= 1 << (bit % 8)
				reject(fmt.Sprintf("key bit %d", bit), kk, nonce, ad, tau, c)
			}
			joined := append(bytes.Clone(ad[0]), ad[1]...)
			reject("joined AD", key, nonce, [][]byte{joined}, tau, c)
			reject("extra AD element", key, nonce, [][]byte{ad[0], ad[1], nil}, tau, c)
			reject("missing AD element", key, nonce, ad[:1], tau, c)
			reject("no AD", key, nonce, nil, tau, c)
			reject("nonce extended", key, append(bytes.Clone(nonce), 0), ad, tau, c)
			reject("nonce truncated", key, nonce[:15], ad, tau, c)
			reject("truncated", key, nonce, ad, tau, c[:len(c)-1])
			reject("extended", key, nonce, ad, tau, append(bytes.Clone(c), 0))
			reject("shorter than tag", key, nonce, ad, tau, c[:tau-1])
			reject("other tag length", key, nonce, ad, tau-1, c)
		}
	})
}

// TestInPlace checks that in-place operation, appending to a prefix and a
// fresh buffer all give the same bytes.
func TestInPlace(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, tau := range []int{0, 16} {
			for _, n := range testLengths {
				key := randBytes(r, 48)
				nonce := randBytes(r, 16)
				m := randBytes(r, n)
				want := Encrypt(key, nonce, nil, tau, m, nil)

				buf := make([]byte, n, n+tau)
				copy(buf, m)
				got := Encrypt(key, nonce, nil, tau, buf, buf[:0])
				if !bytes.Equal(got, want) {
					t.Fatalf("tau %d, |m| %d: in-place Encrypt differs", tau, n)
				}
				if n+tau > 0 && &got[0] != &buf[:1][0] {
					t.Fatalf("tau %d, |m| %d: in-place Encrypt reallocated", tau, n)
				}

				prefix := []byte("prefix")
				got = Encrypt(key, nonce, nil, tau, m, bytes.Clone(prefix))
				if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
					t.Fatalf("tau %d, |m| %d: Encrypt with prefix differs", tau, n)
				}

				pt, ok := Decrypt(key, nonce, nil, tau, got[len(prefix):], got[len(prefix):len(prefix)])
				if !ok || !bytes.Equal(pt, m) {
					t.Fatalf("tau %d, |m| %d: in-place Decrypt failed", tau, n)
				}
				pt, ok = Decrypt(key, nonce, nil, tau, want, bytes.Clone(prefix))
				if !ok || !bytes.Equal(pt[:len(prefix)], prefix) || !bytes.Equal(pt[len(prefix):], m) {
					t.Fatalf("tau %d, |m| %d: Decrypt with prefix failed", tau, n)
				}
			}
		}
	})
}

func TestOverlapPanics(t *testing.T) {
	buf := make([]byte, 100)
	for _, f := range []func(){
		func() { Encrypt(nil, nil, nil, 0, buf[1:50], buf[:0]) },
		func() { Decrypt(nil, nil, nil, 0, buf[1:50], buf[:0]) },
		func() { Encrypt(nil, nil, nil, -1, nil, nil) },
		func() { Decrypt(nil, nil, nil, -1, nil, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("misuse did not panic")
				}
			}()
			f()
		}()
	}
}

// TestZeroAllocs pins the Sphinx hot path: 48-byte key, 16-byte nonce, no
// AD, tau = 0, in place.
func TestZeroAllocs(t *testing.T) {
	paths(t, func(t *testing.T) {
		key := make([]byte, 48)
		nonce := make([]byte, 16)
		buf := make([]byte, 2600)
		for _, f := range []func(){
			func() { Encrypt(key, nonce, nil, 0, buf, buf[:0]) },
			func() { Decrypt(key, nonce, nil, 0, buf, buf[:0]) },
			func() { Decrypt(key, nonce, nil, 16, buf, buf[:0]) },
			func() { Encrypt(key, nonce, nil, 0, buf[:20], buf[:0]) },
		} {
			if n := testing.AllocsPerRun(100, f); n != 0 {
				t.Errorf("%v allocations per call, want 0", n)
			}
		}
	})
}

// TestTinyIsPermutation enciphers every one- and two-byte message under
// one tweak: with tau = 0 AEZ is a permutation of each length.
func TestTinyIsPermutation(t *testing.T) {
	paths(t, func(t *testing.T) {
		key := []byte("permutation test key")
		seen := make(map[[2]byte]bool)
		for v := range 1 << 16 {
			m := []byte{byte(v >> 8), byte(v)}
			c := Encrypt(key, nil, nil, 0, m, nil)
			k := [2]byte(c)
			if seen[k] {
				t.Fatalf("collision at %x", m)
			}
			seen[k] = true
		}
		seen1 := make(map[byte]bool)
		for v := range 256 {
			c := Encrypt(key, nil, nil, 0, []byte{byte(v)}, nil)
			if seen1[c[0]] {
				t.Fatalf("collision at %02x", v)
			}
			seen1[c[0]] = true
		}
	})
}
