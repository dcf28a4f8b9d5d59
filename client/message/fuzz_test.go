package message

import (
	"bytes"
	"testing"
)

// FuzzParseCard: parsing never panics, and any accepted string re-encodes
// to exactly itself.
func FuzzParseCard(f *testing.F) {
	good := goldenCard(f).Encode()
	f.Add(good)
	f.Add(good[:len(good)-1] + "q")
	f.Add("chorus1")
	f.Add("")
	f.Add(CardPrefix + string(bytes.Repeat([]byte{'q'}, CardLength-len(CardPrefix))))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCard(s)
		if err != nil {
			if c != (Card{}) {
				t.Fatal("failed parse returned a card")
			}
			return
		}
		if again := c.Encode(); again != s {
			t.Fatalf("accepted %q re-encodes as %q", s, again)
		}
	})
}

// FuzzCardRoundTrip: for any provider ID, mailbox ID and valid key,
// ParseCard(c.Encode()) == c.
func FuzzCardRoundTrip(f *testing.F) {
	g := goldenCard(f)
	f.Add(g.ProviderID[:], g.MailboxID[:], g.Key.Bytes())
	f.Add(make([]byte, 32), make([]byte, 32), make([]byte, 32))
	f.Fuzz(func(t *testing.T, provider, mailbox, key []byte) {
		var c Card
		if len(provider) != ProviderIDSize || len(mailbox) != MailboxIDSize {
			return
		}
		k, err := NewPublicKey(key)
		if err != nil {
			return
		}
		copy(c.ProviderID[:], provider)
		copy(c.MailboxID[:], mailbox)
		c.Key = k
		p, err := ParseCard(c.Encode())
		if err != nil || !p.Equal(c) {
			t.Fatalf("card did not survive a round trip: %v", err)
		}
	})
}

// FuzzDecodeFragment: the fragment plaintext parser never panics, and what
// it accepts re-encodes to the same plaintext.
func FuzzDecodeFragment(f *testing.F) {
	pt := make([]byte, 100)
	encodeFragment(pt, &Fragment{Index: 1, Count: 3, Total: 40, Body: []byte("hello")})
	f.Add(pt)
	encodeFragment(pt, &Fragment{Count: 1})
	f.Add(pt)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, pt []byte) {
		fr, ok := decodeFragment(pt)
		if !ok {
			return
		}
		if !fr.consistent() {
			t.Fatal("accepted an inconsistent fragment")
		}
		again := make([]byte, len(pt))
		encodeFragment(again, &fr)
		if !bytes.Equal(again, pt) {
			t.Fatal("accepted fragment re-encodes differently")
		}
	})
}
