package message

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/chorus-mixnet/chorus/mix/sphinx"
)

// testSealedLength is what a client on the default geometry might leave for
// a fragment: the user payload less a small reservation.
var testSealedLength = sphinx.DefaultGeometry().UserPayloadLength() - 64

func sealAll(t testing.TB, from *PrivateKey, to PublicKey, msg []byte, sealedLength int) [][]byte {
	t.Helper()
	frags, err := Split(rand.Reader, msg, FragmentCapacity(sealedLength), 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(frags))
	for i, f := range frags {
		if out[i], err = Seal(rand.Reader, from, to, f, sealedLength); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestSealOpen(t *testing.T) {
	alice, bob, carol := newKey(t), newKey(t), newKey(t)
	contacts := []PublicKey{carol.Public(), alice.Public()}
	msg := bytes.Repeat([]byte("the quick brown fox "), 300) // 6000 bytes
	sealed := sealAll(t, alice, bob.Public(), msg, testSealedLength)
	if want := (len(msg) + FragmentCapacity(testSealedLength) - 1) / FragmentCapacity(testSealedLength); len(sealed) != want {
		t.Fatalf("%d fragments, want %d", len(sealed), want)
	}
	r, _ := NewReassembler(ReassemblerConfig{})
	var got *Message
	for i, s := range sealed {
		if len(s) != testSealedLength {
			t.Fatalf("fragment %d is %d bytes, want %d", i, len(s), testSealedLength)
		}
		who, f, err := Open(bob, contacts, s)
		if err != nil || who != 1 {
			t.Fatalf("open fragment %d: sender %d, %v", i, who, err)
		}
		if f.Index != uint32(i) || f.Count != uint32(len(sealed)) || f.Total != uint32(len(msg)) {
			t.Fatalf("fragment %d header: %+v", i, f)
		}
		m, err := r.Add(contacts[who], f)
		if err != nil {
			t.Fatal(err)
		}
		if m != nil {
			got = m
		}
	}
	if got == nil || !bytes.Equal(got.Body, msg) || !got.Sender.Equal(alice.Public()) {
		t.Fatal("message did not survive seal, open and reassembly")
	}
}

func TestSealEmptyAndExactFit(t *testing.T) {
	alice, bob := newKey(t), newKey(t)
	c := FragmentCapacity(testSealedLength)
	for _, n := range []int{0, 1, c - 1, c, c + 1, 3 * c} {
		msg := make([]byte, n)
		rand.Read(msg)
		sealed := sealAll(t, alice, bob.Public(), msg, testSealedLength)
		r, _ := NewReassembler(ReassemblerConfig{})
		var got *Message
		for _, s := range sealed {
			_, f, err := Open(bob, []PublicKey{alice.Public()}, s)
			if err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			if m, err := r.Add(alice.Public(), f); err != nil {
				t.Fatal(err)
			} else if m != nil {
				got = m
			}
		}
		if got == nil || !bytes.Equal(got.Body, msg) {
			t.Fatalf("%d-byte message lost", n)
		}
	}
}

// TestOpenTamper flips every bit position class of every byte of a sealed
// fragment and requires the one opaque failure.
func TestOpenTamper(t *testing.T) {
	alice, bob := newKey(t), newKey(t)
	contacts := []PublicKey{newKey(t).Public(), alice.Public()}
	sealed := sealAll(t, alice, bob.Public(), []byte("meet at the usual place"), 300)[0]
	for i := range sealed {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(sealed)
			bad[i] ^= mask
			if who, _, err := Open(bob, contacts, bad); !errors.Is(err, ErrUnknownSender) || who != -1 {
				t.Fatalf("byte %d ^ %#x: sender %d, err %v", i, mask, who, err)
			}
		}
	}
	for _, bad := range [][]byte{nil, sealed[:SealOverhead-1], sealed[:len(sealed)-1], append(bytes.Clone(sealed), 0)} {
		if _, _, err := Open(bob, contacts, bad); !errors.Is(err, ErrUnknownSender) {
			t.Fatalf("%d-byte blob: %v", len(bad), err)
		}
	}
	if _, _, err := Open(bob, contacts, sealed); err != nil {
		t.Fatalf("untouched fragment: %v", err)
	}
}

func TestOpenUnknownSender(t *testing.T) {
	alice, bob, mallory := newKey(t), newKey(t), newKey(t)
	sealed := sealAll(t, mallory, bob.Public(), []byte("hello"), 300)[0]
	if who, _, err := Open(bob, []PublicKey{alice.Public()}, sealed); !errors.Is(err, ErrUnknownSender) || who != -1 {
		t.Fatalf("stranger's fragment: sender %d, %v", who, err)
	}
	if _, _, err := Open(bob, nil, sealed); !errors.Is(err, ErrUnknownSender) {
		t.Fatalf("no contacts: %v", err)
	}
	// Sealed to someone else: even the right sender key does not open it.
	sealed = sealAll(t, alice, mallory.Public(), []byte("hello"), 300)[0]
	if _, _, err := Open(bob, []PublicKey{alice.Public()}, sealed); !errors.Is(err, ErrUnknownSender) {
		t.Fatalf("fragment for another recipient: %v", err)
	}
	// A zero contact key (a caller's mistake) is skipped, not fatal.
	sealed = sealAll(t, alice, bob.Public(), []byte("hello"), 300)[0]
	if who, _, err := Open(bob, []PublicKey{{}, alice.Public()}, sealed); err != nil || who != 1 {
		t.Fatalf("zero contact key: %d %v", who, err)
	}
}

// TestOpenMalformed seals invalid plaintexts with the real HPKE context: the
// sender is authenticated, the content refused.
func TestOpenMalformed(t *testing.T) {
	alice, bob := newKey(t), newKey(t)
	good := Fragment{Index: 0, Count: 1, Total: 3, Body: []byte("abc")}
	for name, mutate := range map[string]func(pt []byte){
		"version":     func(pt []byte) { pt[0] = 2 },
		"index":       func(pt []byte) { pt[1+MessageIDSize+3] = 1 },
		"count zero":  func(pt []byte) { pt[1+MessageIDSize+7] = 0 },
		"body length": func(pt []byte) { pt[1+MessageIDSize+15] = 4 },
		"huge body":   func(pt []byte) { pt[1+MessageIDSize+12] = 0xff },
		"padding":     func(pt []byte) { pt[len(pt)-1] = 1 },
		"total<body":  func(pt []byte) { pt[1+MessageIDSize+11] = 2 },
	} {
		pt := make([]byte, 300-encSize-tagSize)
		encodeFragment(pt, &good)
		mutate(pt)
		sender, _ := suite.NewSender(bob.Public().KEMPublicKey(), hpkeInfo)
		enc, sealer, _ := sender.SetupAuth(rand.Reader, alice.KEMPrivateKey())
		ct, _ := sealer.Seal(pt, nil)
		who, _, err := Open(bob, []PublicKey{alice.Public()}, append(enc, ct...))
		if !errors.Is(err, ErrMalformed) || who != 0 {
			t.Errorf("%s: sender %d, err %v", name, who, err)
		}
	}
}

func TestSealRefusals(t *testing.T) {
	alice, bob := newKey(t), newKey(t)
	f := Fragment{Count: 1, Total: 10, Body: make([]byte, 10)}
	if _, err := Seal(rand.Reader, alice, bob.Public(), f, SealOverhead+9); !errors.Is(err, ErrCapacity) {
		t.Fatalf("oversized body: %v", err)
	}
	if _, err := Seal(rand.Reader, alice, bob.Public(), Fragment{Count: 1}, SealOverhead); !errors.Is(err, ErrCapacity) {
		t.Fatalf("no room: %v", err)
	}
	if _, err := Seal(rand.Reader, alice, bob.Public(), Fragment{Count: 1, Index: 1}, 300); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad fragment: %v", err)
	}
	if FragmentCapacity(SealOverhead) != 0 || FragmentCapacity(SealOverhead+1) != 1 || FragmentCapacity(-5) != 0 {
		t.Fatal("FragmentCapacity")
	}
	if _, err := Split(rand.Reader, make([]byte, 11), 5, 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("split over max: %v", err)
	}
	if _, err := Split(rand.Reader, make([]byte, 11), 0, 0); !errors.Is(err, ErrCapacity) {
		t.Fatalf("split with no capacity: %v", err)
	}
	if _, err := Split(rand.Reader, make([]byte, DefaultMaxMessageSize+1), 1000, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("split over default max: %v", err)
	}
}

func TestMessageIDText(t *testing.T) {
	id, _ := NewMessageID(rand.Reader)
	b, _ := id.MarshalText()
	var back MessageID
	if err := back.UnmarshalText(b); err != nil || back != id || id.String() != string(b) {
		t.Fatal("message id text round trip")
	}
	if err := back.UnmarshalText([]byte("zz")); err == nil {
		t.Fatal("bad id accepted")
	}
}
