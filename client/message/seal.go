package message

import (
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/hpke"
)

// The HPKE suite of DESIGN §5.6: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// ChaCha20-Poly1305, used in auth mode.
var (
	suite     = hpke.NewSuite(hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, hpke.AEAD_ChaCha20Poly1305)
	kemScheme = hpke.KEM_X25519_HKDF_SHA256.Scheme()
)

// hpkeInfo binds every seal to this protocol and format version.
var hpkeInfo = []byte("chorus e2e message fragment v1")

// Errors from Open.
var (
	// ErrUnknownSender: no contact key opens the fragment. A stranger sealed
	// it, or it was altered or truncated on the way; these cases are
	// indistinguishable by design. Callers count it and drop the fragment.
	ErrUnknownSender = errors.New("message: no contact key opens the fragment")
	// ErrMalformed: a contact's key authenticated the fragment, but what it
	// carries is not a valid fragment (or, from the Reassembler, disagrees
	// with the other fragments of its message). Only that contact's
	// software could have made it.
	ErrMalformed = errors.New("message: malformed fragment")
)

// Seal encrypts f from the sender to the recipient's message key with HPKE
// in auth mode, producing exactly sealedLength bytes: the encapsulated key,
// the ciphertext of the fragment padded to fill the space, and the tag. rand
// supplies the ephemeral key. Every fragment sealed to the same length is
// the same size whatever it carries. f.Body must fit
// FragmentCapacity(sealedLength).
func Seal(rand io.Reader, from *PrivateKey, to PublicKey, f Fragment, sealedLength int) ([]byte, error) {
	if !from.usable() {
		panic("message: Seal with a nil or wiped private key")
	}
	if len(f.Body) > FragmentCapacity(sealedLength) || FragmentCapacity(sealedLength) == 0 {
		return nil, ErrCapacity
	}
	if !f.consistent() {
		return nil, fmt.Errorf("seal fragment: %w", ErrMalformed)
	}
	sender, err := suite.NewSender(to.KEMPublicKey(), hpkeInfo)
	if err != nil {
		return nil, fmt.Errorf("seal fragment: %w", err)
	}
	enc, sealer, err := sender.SetupAuth(rand, from.kemKey)
	if err != nil {
		return nil, fmt.Errorf("seal fragment: %w", err)
	}
	pt := make([]byte, sealedLength-encSize-tagSize)
	defer clear(pt)
	encodeFragment(pt, &f)
	ct, err := sealer.Seal(pt, nil)
	if err != nil {
		return nil, fmt.Errorf("seal fragment: %w", err)
	}
	out := make([]byte, 0, sealedLength)
	out = append(append(out, enc...), ct...)
	if len(out) != sealedLength {
		panic("message: sealed fragment has the wrong length")
	}
	return out, nil
}

// Open decrypts a sealed fragment addressed to the recipient key, trying
// each contact key in turn as the authenticated sender, and returns the
// index in contacts of the key that authenticated it.
//
// Trial decryption costs two X25519 ladders, the HPKE key schedule and an
// AEAD open per contact tried (see the package documentation for measured
// figures), so callers should order contacts most likely first (for
// example, most recent sender first). If no contact key opens the fragment
// the error is ErrUnknownSender, after trying them all.
func Open(to *PrivateKey, contacts []PublicKey, sealed []byte) (int, Fragment, error) {
	if !to.usable() {
		panic("message: Open with a nil or wiped private key")
	}
	if len(sealed) < SealOverhead {
		return -1, Fragment{}, ErrUnknownSender
	}
	enc, ct := sealed[:encSize], sealed[encSize:]
	receiver, err := suite.NewReceiver(to.kemKey, hpkeInfo)
	if err != nil {
		return -1, Fragment{}, fmt.Errorf("open fragment: %w", err)
	}
	for i := range contacts {
		opener, err := receiver.SetupAuth(enc, contacts[i].KEMPublicKey())
		if err != nil {
			// A low-order encapsulated key (or a zero contact key).
			continue
		}
		pt, err := opener.Open(ct, nil)
		if err != nil {
			continue
		}
		f, ok := decodeFragment(pt)
		clear(pt)
		if !ok {
			return i, Fragment{}, ErrMalformed
		}
		return i, f, nil
	}
	return -1, Fragment{}, ErrUnknownSender
}
