package message

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Sizes of a contact card's fields.
const (
	// ProviderIDSize is the size of a provider's node ID.
	ProviderIDSize = 32
	// MailboxIDSize is the size of a mailbox ID.
	MailboxIDSize = 32
)

// CardPrefix starts every encoded contact card: the bech32 human-readable
// part "chorus" and the separator "1".
const CardPrefix = cardHRP + "1"

// CardLength is the length of every encoded contact card.
const CardLength = len(CardPrefix) + cardSymbols + checksumSymbols

const (
	cardHRP = "chorus"
	// cardVersion is the first data symbol ('q'). A future card format
	// (say, with a post-quantum key) takes another value.
	cardVersion     = 0
	cardPayloadSize = ProviderIDSize + MailboxIDSize + KeySize
	// cardSymbols is the version symbol plus the payload in 5-bit groups.
	cardSymbols = 1 + (cardPayloadSize*8+4)/5
)

// ErrCard is returned for any string that is not a well-formed contact card:
// a typo, a truncated paste, a wrong prefix, an unknown version or a key
// that cannot be used. It never echoes the input.
var ErrCard = errors.New("message: not a valid contact card")

// Card is what one user gives another so they can write to each other: the
// provider that holds the user's mailbox, the mailbox, and the user's
// message key. It is public by design, but it names a mailbox, so String
// prints only a fingerprint; use Encode for the shareable form.
type Card struct {
	ProviderID [ProviderIDSize]byte
	MailboxID  [MailboxIDSize]byte
	Key        PublicKey
}

// Equal reports whether c and o are the same card.
func (c Card) Equal(o Card) bool {
	return subtle.ConstantTimeCompare(c.ProviderID[:], o.ProviderID[:])&
		subtle.ConstantTimeCompare(c.MailboxID[:], o.MailboxID[:]) == 1 &&
		c.Key.Equal(o.Key)
}

// Encode returns the card as one copy-pasteable string:
//
//	"chorus1" + version symbol + payload + checksum
//
// in the bech32 alphabet (lower-case base32 without padding), where the
// payload is provider ID || mailbox ID || message key (96 bytes) and the
// checksum is the six-symbol bech32m code of BIP-350 over the prefix,
// version and payload. See the package documentation for what the checksum
// guarantees.
func (c Card) Encode() string {
	var payload [cardPayloadSize]byte
	copy(payload[0:], c.ProviderID[:])
	copy(payload[ProviderIDSize:], c.MailboxID[:])
	copy(payload[ProviderIDSize+MailboxIDSize:], c.Key.k[:])

	data := make([]byte, 0, cardSymbols+checksumSymbols)
	data = append(data, cardVersion)
	data = toSymbols(data, payload[:])
	data = appendChecksum(cardHRP, data)

	var b strings.Builder
	b.Grow(CardLength)
	b.WriteString(CardPrefix)
	for _, s := range data {
		b.WriteByte(bech32Alphabet[s])
	}
	return b.String()
}

// MarshalText returns Encode's string.
func (c Card) MarshalText() ([]byte, error) { return []byte(c.Encode()), nil }

// UnmarshalText parses with ParseCard.
func (c *Card) UnmarshalText(b []byte) error {
	p, err := ParseCard(string(b))
	if err != nil {
		return err
	}
	*c = p
	return nil
}

// String prints a fingerprint of the card, never the card itself.
func (c Card) String() string             { return fingerprint("card", []byte(c.Encode())) }
func (c Card) LogValue() slog.Value       { return slog.StringValue(c.String()) }
func (c Card) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// ParseCard decodes a card made by Encode. It accepts exactly the canonical
// form (lower case, no spaces, zero padding bits), so any accepted string
// re-encodes to itself; callers that take cards from people may trim
// surrounding white space first. Any single-character substitution and any
// swap of two adjacent characters of a valid card is refused.
func ParseCard(s string) (Card, error) {
	var c Card
	if len(s) != CardLength || s[:len(CardPrefix)] != CardPrefix {
		return c, ErrCard
	}
	data := make([]byte, 0, cardSymbols+checksumSymbols)
	for i := len(CardPrefix); i < len(s); i++ {
		v := bech32Reverse[s[i]]
		if v < 0 {
			return c, ErrCard
		}
		data = append(data, byte(v))
	}
	if !verifyChecksum(cardHRP, data) {
		return c, ErrCard
	}
	if data[0] != cardVersion {
		return c, ErrCard
	}
	var payload [cardPayloadSize]byte
	if !fromSymbols(payload[:], data[1:cardSymbols]) {
		return c, ErrCard
	}
	copy(c.ProviderID[:], payload[0:])
	copy(c.MailboxID[:], payload[ProviderIDSize:])
	key, err := NewPublicKey(payload[ProviderIDSize+MailboxIDSize:])
	if err != nil {
		return Card{}, ErrCard
	}
	c.Key = key
	return c, nil
}

// The bech32 alphabet and checksum (BIP-173), with the bech32m constant
// (BIP-350). The card is longer than bech32's 90-character limit for
// addresses; the checksum's guarantees that the card relies on (every
// single substitution and every adjacent swap detected) hold at any length,
// see the package documentation.
const (
	bech32Alphabet  = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	bech32mConst    = 0x2bc830a3
	checksumSymbols = 6
)

var bech32Reverse = func() (r [256]int8) {
	for i := range r {
		r[i] = -1
	}
	for i := 0; i < len(bech32Alphabet); i++ {
		r[bech32Alphabet[i]] = int8(i)
	}
	return r
}()

// polymod computes the bech32 checksum polynomial remainder: the symbols
// are the coefficients of a polynomial over GF(32), reduced modulo the
// degree-6 generator g(x) = x⁶ + 29x⁵ + 22x⁴ + 20x³ + 21x² + 29x + 18.
func polymod(chk uint32, symbols []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	for _, v := range symbols {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range gen {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

func hrpChecksum(hrp string) uint32 {
	exp := make([]byte, 0, 2*len(hrp)+1)
	for i := 0; i < len(hrp); i++ {
		exp = append(exp, hrp[i]>>5)
	}
	exp = append(exp, 0)
	for i := 0; i < len(hrp); i++ {
		exp = append(exp, hrp[i]&31)
	}
	return polymod(1, exp)
}

func appendChecksum(hrp string, data []byte) []byte {
	chk := polymod(hrpChecksum(hrp), data)
	chk = polymod(chk, make([]byte, checksumSymbols)) ^ bech32mConst
	for i := range checksumSymbols {
		data = append(data, byte(chk>>(5*(checksumSymbols-1-i)))&31)
	}
	return data
}

func verifyChecksum(hrp string, data []byte) bool {
	return polymod(hrpChecksum(hrp), data) == bech32mConst
}

// toSymbols appends b as 5-bit symbols, most significant bit first, the
// last symbol padded with zero bits.
func toSymbols(dst, b []byte) []byte {
	var acc uint32
	bits := 0
	for _, x := range b {
		acc = acc<<8 | uint32(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			dst = append(dst, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		dst = append(dst, byte(acc<<(5-bits))&31)
	}
	return dst
}

// fromSymbols fills dst from 5-bit symbols. It reports false unless the
// symbols hold exactly len(dst) bytes with zero padding bits, so every
// byte string has exactly one encoding.
func fromSymbols(dst []byte, symbols []byte) bool {
	if len(symbols) != (len(dst)*8+4)/5 {
		return false
	}
	var acc uint32
	bits, n := 0, 0
	for _, s := range symbols {
		acc = acc<<5 | uint32(s)
		bits += 5
		if bits >= 8 {
			bits -= 8
			dst[n] = byte(acc >> bits)
			n++
		}
	}
	return n == len(dst) && acc&(1<<bits-1) == 0
}
