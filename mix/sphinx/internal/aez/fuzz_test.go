package aez

import (
	"bytes"
	"testing"
)

// FuzzRoundTrip checks, for fuzzer-chosen keys, nonces, AD vectors, tag
// lengths and messages, that both paths produce the same ciphertext of
// length |m|+tau, that Decrypt inverts Encrypt, and, for tau ≥ 8, that a
// flipped bit of the ciphertext, nonce or AD is rejected. (Below 8 bytes of
// tag a random forgery succeeds with probability 2^(-8·tau), which a fuzzer
// would eventually find, so the tamper property is only asserted where that
// is negligible.)
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("key"), []byte("0123456789abcdef"), []byte("ad"), uint8(1), uint8(0), []byte("hello, world"), uint32(0))
	f.Add(make([]byte, 48), make([]byte, 16), []byte{}, uint8(0), uint8(16), make([]byte, 31), uint32(5))
	f.Add(make([]byte, 48), make([]byte, 16), []byte("abcdef"), uint8(3), uint8(16), make([]byte, 100), uint32(77))
	f.Add([]byte{}, []byte{}, []byte{}, uint8(0), uint8(8), []byte{}, uint32(3))
	f.Add(make([]byte, 16), []byte{1}, []byte("x"), uint8(2), uint8(33), make([]byte, 2049), uint32(1<<20))
	f.Fuzz(func(t *testing.T, key, nonce, adBlob []byte, nAD, tauSel uint8, m []byte, flip uint32) {
		tau := int(tauSel % 41)
		// Split adBlob into nAD%4 elements (possibly empty).
		var ad [][]byte
		if k := int(nAD % 4); k > 0 {
			step := len(adBlob)/k + 1
			for i := range k {
				lo, hi := min(i*step, len(adBlob)), min((i+1)*step, len(adBlob))
				ad = append(ad, adBlob[lo:hi])
			}
		}

		saved := useAESNI
		defer func() { useAESNI = saved }()
		var c []byte
		for _, ni := range []bool{false, saved} {
			useAESNI = ni
			c2 := Encrypt(key, nonce, ad, tau, m, nil)
			if len(c2) != len(m)+tau {
				t.Fatalf("|c| = %d, want %d", len(c2), len(m)+tau)
			}
			if c != nil && !bytes.Equal(c, c2) {
				t.Fatal("AES-NI and portable ciphertexts differ")
			}
			c = c2
			got, ok := Decrypt(key, nonce, ad, tau, c, nil)
			if !ok || !bytes.Equal(got, m) {
				t.Fatalf("round trip failed (ok=%v)", ok)
			}
		}
		useAESNI = saved

		if tau < 8 {
			return
		}
		cc := bytes.Clone(c)
		bit := int(flip % uint32(8*len(cc)))
		cc[bit/8] ^= 1 << (bit % 8)
		if _, ok := Decrypt(key, nonce, ad, tau, cc, nil); ok {
			t.Fatalf("flipped ciphertext bit %d accepted", bit)
		}
		if len(nonce) > 0 {
			nn := bytes.Clone(nonce)
			bit := int(flip % uint32(8*len(nn)))
			nn[bit/8] ^= 1 << (bit % 8)
			if _, ok := Decrypt(key, nn, ad, tau, c, nil); ok {
				t.Fatalf("flipped nonce bit %d accepted", bit)
			}
		}
		for i := range ad {
			if len(ad[i]) == 0 {
				continue
			}
			aa := make([][]byte, len(ad))
			copy(aa, ad)
			aa[i] = bytes.Clone(ad[i])
			bit := int(flip % uint32(8*len(aa[i])))
			aa[i][bit/8] ^= 1 << (bit % 8)
			if _, ok := Decrypt(key, nonce, aa, tau, c, nil); ok {
				t.Fatalf("flipped AD[%d] bit %d accepted", i, bit)
			}
		}
	})
}
