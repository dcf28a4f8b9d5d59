package message

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/cloudflare/circl/dh/x25519"
)

// BenchmarkX25519Ladder is the unit the other figures are best read in: on
// a shared machine absolute times drift, ratios to one ladder do not.
func BenchmarkX25519Ladder(b *testing.B) {
	var out, s, p x25519.Key
	s[0], p[0] = 7, 9
	for b.Loop() {
		x25519.Shared(&out, &s, &p)
	}
}

func BenchmarkSeal(b *testing.B) {
	alice, bob := newKey(b), newKey(b)
	frags := split(b, make([]byte, FragmentCapacity(testSealedLength)), FragmentCapacity(testSealedLength))
	b.SetBytes(int64(testSealedLength))
	for b.Loop() {
		if _, err := Seal(rand.Reader, alice, bob.Public(), frags[0], testSealedLength); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures opening a fragment whose sender is the last of n
// contacts tried: the cost of trial decryption grows with n.
func BenchmarkOpen(b *testing.B) {
	alice, bob := newKey(b), newKey(b)
	sealed := sealAll(b, alice, bob.Public(), make([]byte, 100), testSealedLength)[0]
	for _, n := range []int{1, 10, 100} {
		contacts := make([]PublicKey, n)
		for i := range contacts[:n-1] {
			contacts[i] = newKey(b).Public()
		}
		contacts[n-1] = alice.Public()
		b.Run(fmt.Sprintf("contacts=%d", n), func(b *testing.B) {
			for b.Loop() {
				if who, _, err := Open(bob, contacts, sealed); err != nil || who != n-1 {
					b.Fatal(who, err)
				}
			}
		})
	}
}

func BenchmarkParseCard(b *testing.B) {
	s := goldenCard(b).Encode()
	for b.Loop() {
		if _, err := ParseCard(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReassemble(b *testing.B) {
	alice := newKey(b).Public()
	msg := make([]byte, 64<<10)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		r, _ := NewReassembler(ReassemblerConfig{})
		frags := split(b, msg, FragmentCapacity(testSealedLength))
		for _, f := range frags {
			if _, err := r.Add(alice, f); err != nil {
				b.Fatal(err)
			}
		}
	}
}
