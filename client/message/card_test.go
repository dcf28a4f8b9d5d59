package message

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func TestCardGolden(t *testing.T) {
	got := goldenCard(t).Encode() + "\n"
	path := filepath.Join("testdata", "card.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("card encoding changed:\n got %s\nwant %s", got, want)
	}
	c, err := ParseCard(strings.TrimSpace(string(want)))
	if err != nil || !c.Equal(goldenCard(t)) {
		t.Fatalf("golden card does not parse back: %v", err)
	}
}

func TestCardShape(t *testing.T) {
	s := goldenCard(t).Encode()
	if len(s) != CardLength || CardLength != 168 {
		t.Fatalf("card is %d characters, CardLength %d", len(s), CardLength)
	}
	if !strings.HasPrefix(s, "chorus1q") {
		t.Fatalf("card %q does not start with chorus1q", s)
	}
	for _, r := range s[len(CardPrefix):] {
		if !strings.ContainsRune(bech32Alphabet, r) {
			t.Fatalf("card has %q outside the alphabet", r)
		}
	}
}

// TestBech32mVector checks the checksum against BIP-350's valid test
// strings, so the card's checksum is the published code and not a variant.
func TestBech32mVector(t *testing.T) {
	for _, s := range []string{
		"a1lqfn3a",
		"abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
		"split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
		"?1v759aa",
	} {
		i := strings.LastIndexByte(s, '1')
		var data []byte
		for _, c := range []byte(s[i+1:]) {
			data = append(data, byte(bech32Reverse[c]))
		}
		if !verifyChecksum(s[:i], data) {
			t.Errorf("BIP-350 vector %q fails", s)
		}
		if again := appendChecksum(s[:i], data[:len(data)-checksumSymbols:len(data)-checksumSymbols]); !bytes.Equal(again, data) {
			t.Errorf("BIP-350 vector %q: checksum recomputed differently", s)
		}
	}
}

func TestCardRoundTrip(t *testing.T) {
	for range 50 {
		var c Card
		rand.Read(c.ProviderID[:])
		rand.Read(c.MailboxID[:])
		c.Key = newKey(t).Public()
		s := c.Encode()
		p, err := ParseCard(s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		if !p.Equal(c) || p.Encode() != s {
			t.Fatal("card did not survive a round trip")
		}
		var u Card
		text, _ := c.MarshalText()
		if err := u.UnmarshalText(text); err != nil || !u.Equal(c) {
			t.Fatalf("text round trip: %v", err)
		}
	}
}

// TestCardTypos requires that every single-character substitution (by any
// byte at all) and every swap of two adjacent, different characters is
// refused, for several cards; and that deleting or inserting a character
// is refused too.
func TestCardTypos(t *testing.T) {
	cards := []Card{goldenCard(t)}
	for range 4 {
		var c Card
		rand.Read(c.ProviderID[:])
		rand.Read(c.MailboxID[:])
		c.Key = newKey(t).Public()
		cards = append(cards, c)
	}
	for _, c := range cards {
		s := []byte(c.Encode())
		tried := 0
		for i := range s {
			orig := s[i]
			for b := range 256 {
				if byte(b) == orig {
					continue
				}
				s[i] = byte(b)
				if _, err := ParseCard(string(s)); err == nil {
					t.Fatalf("substitution at %d (%q→%q) accepted", i, orig, byte(b))
				}
				tried++
			}
			s[i] = orig
		}
		for i := 0; i+1 < len(s); i++ {
			if s[i] == s[i+1] {
				continue
			}
			s[i], s[i+1] = s[i+1], s[i]
			if _, err := ParseCard(string(s)); err == nil {
				t.Fatalf("transposition at %d accepted", i)
			}
			s[i], s[i+1] = s[i+1], s[i]
			tried++
		}
		for i := range s {
			del := append(append([]byte(nil), s[:i]...), s[i+1:]...)
			if _, err := ParseCard(string(del)); err == nil {
				t.Fatalf("deletion at %d accepted", i)
			}
			ins := append(append(append([]byte(nil), s[:i]...), 'q'), s[i:]...)
			if _, err := ParseCard(string(ins)); err == nil {
				t.Fatalf("insertion at %d accepted", i)
			}
		}
		if tried < CardLength*255 {
			t.Fatalf("only %d variants tried", tried)
		}
	}
}

func TestCardRefusals(t *testing.T) {
	good := goldenCard(t).Encode()
	// A card whose key is a low-order point, with a valid checksum.
	var low Card
	low.Key.k[0] = 1 // the point u=1 has order 4
	cases := map[string]string{
		"empty":        "",
		"upper case":   strings.ToUpper(good),
		"spaces":       " " + good[1:],
		"trailing nl":  good[:len(good)-1] + "\n",
		"other prefix": "chorux1" + good[7:],
		"low-order":    low.Encode(),
		"version 1": func() string {
			data := []byte{1}
			data = toSymbols(data, make([]byte, cardPayloadSize))
			data = appendChecksum(cardHRP, data)
			var b strings.Builder
			b.WriteString(CardPrefix)
			for _, s := range data {
				b.WriteByte(bech32Alphabet[s])
			}
			return b.String()
		}(),
	}
	for name, s := range cases {
		if _, err := ParseCard(s); !errors.Is(err, ErrCard) {
			t.Errorf("%s: err = %v, want ErrCard", name, err)
		}
	}
	// Non-zero padding bits with a valid checksum.
	g := goldenCard(t)
	data := []byte{cardVersion}
	data = toSymbols(data, append(append(g.ProviderID[:], g.MailboxID[:]...), g.Key.k[:]...))
	data[len(data)-1] |= 1
	data = appendChecksum(cardHRP, data)
	var b strings.Builder
	b.WriteString(CardPrefix)
	for _, s := range data {
		b.WriteByte(bech32Alphabet[s])
	}
	if _, err := ParseCard(b.String()); !errors.Is(err, ErrCard) {
		t.Errorf("non-zero padding accepted")
	}
	// The error never echoes the input.
	_, err := ParseCard(good[:100])
	if strings.Contains(err.Error(), good[10:20]) {
		t.Fatalf("error echoes its input: %v", err)
	}
}

func TestCardRedacted(t *testing.T) {
	c := goldenCard(t)
	enc := c.Encode()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, c)
		if strings.Contains(out, enc[10:30]) || strings.Contains(out, hex.EncodeToString(c.MailboxID[:8])) {
			t.Fatalf("card printed with %s leaks: %s", verb, out)
		}
	}
}
