package sphinx

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"math/big"
	"testing"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/curve25519"
)

func TestKDF(t *testing.T) {
	r := testRand(20)
	for range 50 {
		var ss [32]byte
		_, _ = io.ReadFull(r, ss[:])
		want, err := hkdf.Expand(sha256.New, ss[:], kdfInfo, 160)
		if err != nil {
			t.Fatal(err)
		}
		var k hopKeys
		k.derive(&ss)
		var got []byte
		got = append(got, k.macKey[:]...)
		got = append(got, k.streamKey[:]...)
		got = append(got, k.iv[:]...)
		got = append(got, k.sprpKey[:]...)
		got = append(got, k.blindSeed[:]...)
		if !bytes.Equal(got, want) {
			t.Fatalf("kdf(%x) = %x, want %x", ss, got, want)
		}
	}
}

func TestHeaderMAC(t *testing.T) {
	r := testRand(21)
	for _, n := range []int{0, 1, 63, 64, 65, 444, maxHeaderLength - macLength} {
		var key [32]byte
		_, _ = io.ReadFull(r, key[:])
		msg := make([]byte, n)
		_, _ = io.ReadFull(r, msg)
		m := hmac.New(sha256.New, key[:])
		m.Write(msg)
		want := m.Sum(nil)
		var got [32]byte
		headerMAC(&got, &key, msg[:n/3], msg[n/3:n/2], msg[n/2:])
		if !bytes.Equal(got[:], want) {
			t.Fatalf("%d bytes: mac mismatch", n)
		}
	}
}

func TestBlindingScalar(t *testing.T) {
	var seed [32]byte
	seed[5] = 9
	c, _ := chacha20.NewUnauthenticatedCipher(seed[:], make([]byte, 12))
	want := make([]byte, 32)
	c.XORKeyStream(want, want)
	var got [32]byte
	blindingScalar(&got, &seed)
	if !bytes.Equal(got[:], want) {
		t.Fatal("blinding scalar mismatch")
	}
}

var bigL, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

func (s *scalar) big() *big.Int {
	var b [32]byte
	s.putBytes(&b)
	return leBig(b[:])
}

func leBig(b []byte) *big.Int {
	be := bytes.Clone(b)
	for i, j := 0, len(be)-1; i < j; i, j = i+1, j-1 {
		be[i], be[j] = be[j], be[i]
	}
	return new(big.Int).SetBytes(be)
}

func TestScalarConstants(t *testing.T) {
	R := new(big.Int).Lsh(big.NewInt(1), 256)
	if groupOrder.big().Cmp(bigL) != 0 {
		t.Fatal("groupOrder")
	}
	if montR2.big().Cmp(new(big.Int).Mod(new(big.Int).Mul(R, R), bigL)) != 0 {
		t.Fatal("montR2")
	}
	if inv8.big().Cmp(new(big.Int).ModInverse(big.NewInt(8), bigL)) != 0 {
		t.Fatal("inv8")
	}
	// montNeg·l ≡ -1 (mod 2^64)
	if montNeg*groupOrder[0] != ^uint64(0) {
		t.Fatal("montNeg")
	}
}

func TestMontMul(t *testing.T) {
	R := new(big.Int).Lsh(big.NewInt(1), 256)
	Rinv := new(big.Int).ModInverse(R, bigL)
	r := testRand(22)
	lMinus1 := new(big.Int).Sub(bigL, big.NewInt(1))
	var all1 scalar
	for i := range all1 {
		all1[i] = ^uint64(0)
	}
	edges := []*big.Int{big.NewInt(0), big.NewInt(1), lMinus1, new(big.Int).Sub(R, big.NewInt(1))}
	check := func(a, b *big.Int) {
		var sa, sb, z scalar
		var ab, bb [32]byte
		a.FillBytes(ab[:])
		b.FillBytes(bb[:])
		slicesReverse(ab[:])
		slicesReverse(bb[:])
		sa.setBytes(&ab)
		sb.setBytes(&bb)
		montMul(&z, &sa, &sb)
		want := new(big.Int).Mul(a, b)
		want.Mul(want, Rinv).Mod(want, bigL)
		if z.big().Cmp(want) != 0 {
			t.Fatalf("montMul(%x, %x) = %x, want %x", a, b, z.big(), want)
		}
	}
	for _, a := range edges {
		for _, b := range edges[:3] { // b < l
			check(a, b)
		}
	}
	for range 2000 {
		var ab, bb [32]byte
		_, _ = io.ReadFull(r, ab[:])
		_, _ = io.ReadFull(r, bb[:])
		a := new(big.Int).SetBytes(ab[:])
		b := new(big.Int).Mod(new(big.Int).SetBytes(bb[:]), bigL)
		check(a, b)
	}
}

func slicesReverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

func clampedBig(k [32]byte) *big.Int {
	clampScalar(&k)
	return leBig(k[:])
}

// TestAccumulator checks the product and the clamped representative
// against math/big.
func TestAccumulator(t *testing.T) {
	r := testRand(23)
	fallbacks := 0
	for range 300 {
		var x [32]byte
		_, _ = io.ReadFull(r, x[:])
		var acc accumulator
		acc.init(&x)
		prod := clampedBig(x)
		for range 6 {
			var b [32]byte
			_, _ = io.ReadFull(r, b[:])
			acc.mul(&b)
			prod.Mul(prod, clampedBig(b))
			var tb [32]byte
			if !acc.ladderScalar(&tb) {
				fallbacks++
				continue
			}
			// t is already clamped ...
			c := tb
			clampScalar(&c)
			if c != tb {
				t.Fatalf("t = %x is not in clamped form", tb)
			}
			// ... and ±prod mod l.
			tm := new(big.Int).Mod(leBig(tb[:]), bigL)
			pm := new(big.Int).Mod(prod, bigL)
			neg := new(big.Int).Mod(new(big.Int).Neg(pm), bigL)
			if tm.Cmp(pm) != 0 && tm.Cmp(neg) != 0 {
				t.Fatalf("t ≢ ±s (mod l)")
			}
		}
	}
	if fallbacks > 0 {
		t.Fatalf("%d fallbacks in random trials; expected none", fallbacks)
	}
	// The rare case: s/8 mod l is 0 or tiny, so neither j = m nor l-m is
	// in [2^251, 2^252).
	for _, m := range []int64{0, 1, 12345} {
		var acc accumulator
		// acc.m = (8m)·R mod l, so s = 8m.
		s := new(big.Int).Mul(big.NewInt(8*m), new(big.Int).Lsh(big.NewInt(1), 256))
		s.Mod(s, bigL)
		var b [32]byte
		s.FillBytes(b[:])
		slicesReverse(b[:])
		acc.m.setBytes(&b)
		var tb [32]byte
		if acc.ladderScalar(&tb) {
			t.Fatalf("m = %d: no clamped representative exists, but ladderScalar succeeded", m)
		}
	}
}

// refHops is Katzenpost's definition of the per-hop group elements and
// shared secrets (repeated blinding), written with x/crypto's X25519.
func refHops(t *testing.T, x []byte, pubs [][32]byte) (alphas, secrets [][]byte) {
	alpha, err := curve25519.X25519(x, curve25519.Basepoint)
	if err != nil {
		t.Fatal(err)
	}
	var blinds [][]byte
	for i, pub := range pubs {
		if i > 0 {
			if alpha, err = curve25519.X25519(blinds[i-1], alpha); err != nil {
				t.Fatal(err)
			}
		}
		ss, err := curve25519.X25519(x, pub[:])
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blinds {
			if ss, err = curve25519.X25519(b, ss); err != nil {
				t.Fatal(err)
			}
		}
		alphas = append(alphas, alpha)
		secrets = append(secrets, ss)
		okm, _ := hkdf.Expand(sha256.New, ss, kdfInfo, 160)
		c, _ := chacha20.NewUnauthenticatedCipher(okm[128:], make([]byte, 12))
		b := make([]byte, 32)
		c.XORKeyStream(b, b)
		blinds = append(blinds, b)
	}
	return alphas, secrets
}

// TestAccumulatedBlinding checks that packet creation's accumulated
// blinding gives exactly the group elements and keys of Katzenpost's
// repeated blinding, both as written here (deriveHops with repeated set,
// also the fallback path) and as an independent reference.
func TestAccumulatedBlinding(t *testing.T) {
	r := testRand(24)
	for trial := range 40 {
		n := 1 + trial%MaxHops
		nodes := newTestNodes(t, r, n)
		path := testPath(r, nodes, false)
		var x [32]byte
		_, _ = io.ReadFull(r, x[:])
		pubs := make([][32]byte, n)
		for i := range nodes {
			pubs[i] = nodes[i].key.Public().Array()
		}
		alphas, secrets := refHops(t, x[:], pubs)

		var fast, slow headerKeys
		if err := deriveHops(&x, path, &fast, false); err != nil {
			t.Fatal(err)
		}
		if err := deriveHops(&x, path, &slow, true); err != nil {
			t.Fatal(err)
		}
		if fast != slow {
			t.Fatalf("%d hops: accumulated and repeated blinding differ", n)
		}
		for i := range n {
			if !bytes.Equal(fast.alpha[i][:], alphas[i]) {
				t.Fatalf("%d hops: alpha %d differs from the reference", n, i)
			}
			var want hopKeys
			want.derive((*[32]byte)(secrets[i]))
			if fast.hop[i] != want {
				t.Fatalf("%d hops: keys %d differ from the reference", n, i)
			}
		}
	}
}
