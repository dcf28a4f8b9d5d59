package message

import (
	"crypto/rand"
	"testing"
)

// testKey makes a deterministic message key whose scalar is seed, seed+1, ...
func testKey(t testing.TB, seed byte) *PrivateKey {
	t.Helper()
	var b [KeySize]byte
	for i := range b {
		b[i] = seed + byte(i)
	}
	k, err := NewPrivateKey(b[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKey(t testing.TB) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// goldenCard is the card of the golden test: provider ID 0x00..0x1f,
// mailbox ID 0x20..0x3f, and the public key of scalar 0x40..0x5f.
func goldenCard(t testing.TB) Card {
	t.Helper()
	var c Card
	for i := range c.ProviderID {
		c.ProviderID[i] = byte(i)
		c.MailboxID[i] = byte(32 + i)
	}
	c.Key = testKey(t, 64).Public()
	return c
}
