package sphinx

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/blake2b"
)

func TestDeliveryRoundTrip(t *testing.T) {
	g := DefaultGeometry()
	fwd := Delivery{Payload: bytes.Repeat([]byte{7}, g.ForwardPayloadLength())}
	reply := Delivery{IsSURBReply: true, SURBID: [16]byte{1, 2}, Payload: bytes.Repeat([]byte{9}, g.PayloadLength())}
	for _, d := range []Delivery{fwd, reply} {
		b, err := AppendDelivery(nil, g, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != g.DeliveryLength() {
			t.Fatalf("length %d, want %d", len(b), g.DeliveryLength())
		}
		back, err := ParseDelivery(g, b)
		if err != nil || back.IsSURBReply != d.IsSURBReply || back.SURBID != d.SURBID || !bytes.Equal(back.Payload, d.Payload) {
			t.Fatalf("round trip: %v %+v", err, back.SURBID)
		}
	}
	// Wrong payload lengths are refused on encode.
	if _, err := AppendDelivery(nil, g, Delivery{Payload: make([]byte, 5)}); err == nil {
		t.Fatal("short forward payload accepted")
	}
	if _, err := AppendDelivery(nil, g, Delivery{IsSURBReply: true, Payload: make([]byte, g.ForwardPayloadLength())}); err == nil {
		t.Fatal("short reply payload accepted")
	}
}

func TestDeliveryTamper(t *testing.T) {
	g := DefaultGeometry()
	b, _ := AppendDelivery(nil, g, Delivery{Payload: make([]byte, g.ForwardPayloadLength())})
	for _, mut := range []func([]byte) []byte{
		func(b []byte) []byte { b[0] = 3; return b },        // unknown kind
		func(b []byte) []byte { b[0] = 0; return b },        // zero kind
		func(b []byte) []byte { b[1] = 1; return b },        // SURB ID on a forward message
		func(b []byte) []byte { b[len(b)-1] = 1; return b }, // non-zero padding
		func(b []byte) []byte { return b[:len(b)-1] },       // short
		func(b []byte) []byte { return append(b, 0) },       // long
	} {
		if _, err := ParseDelivery(g, mut(bytes.Clone(b))); err != ErrInvalidDelivery {
			t.Fatalf("tampered delivery: %v", err)
		}
	}
}

func FuzzParseDelivery(f *testing.F) {
	g, _ := NewGeometry(3, 40, false)
	ok, _ := AppendDelivery(nil, g, Delivery{Payload: make([]byte, g.ForwardPayloadLength())})
	f.Add(ok)
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDelivery(g, b)
		if err != nil {
			return
		}
		out, err := AppendDelivery(nil, g, d)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func TestReservedRecipients(t *testing.T) {
	want := blake2b.Sum256([]byte("chorus echo v1"))
	if EchoRecipient() != want {
		t.Fatal("echo recipient is not BLAKE2b-256(\"chorus echo v1\")")
	}
	if DropRecipient() != ([32]byte{}) {
		t.Fatal("drop recipient is not all zero")
	}
}
