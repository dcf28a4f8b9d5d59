package pki_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
	"github.com/fxamacker/cbor/v2"
)

// resignRaw signs an arbitrary descriptor body with n's identity key, the
// way SignDescriptor would, so a test can check that decoding rejects the
// body itself and not merely the signature.
func resignRaw(t *testing.T, n *pkitest.Node, body []byte) []byte {
	t.Helper()
	sig := n.Identity.Sign(append([]byte("chorus-descriptor-v1\x00"), body...))
	raw, err := (&pki.SignedDescriptor{Body: body, Signature: sig}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestDescriptorRoundTrip(t *testing.T) {
	n := pkitest.NewNode("mix1", pki.RoleMix, 7, "tcp://127.0.0.1:3000")
	d, err := pki.VerifyDescriptor(n.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "mix1" || d.Epoch != 7 || d.Role != pki.RoleMix || d.ID != n.Identity.Public().NodeID() ||
		!d.LinkKey.Equal(n.Link.Public()) || !d.IdentityKey.Equal(n.Identity.Public()) {
		t.Fatalf("decoded %+v", d)
	}
	for e := uint64(7); e < 10; e++ {
		k, ok := d.SphinxKey(e)
		if !ok || !k.Equal(pkitest.Sphinx("mix1", e).Public()) {
			t.Fatalf("sphinx key for epoch %d", e)
		}
	}
	if _, ok := d.SphinxKey(10); ok {
		t.Fatal("sphinx key for epoch 10")
	}
	body, err := d.MarshalBinary()
	if err != nil || !bytes.Equal(body, n.Signed.Body) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	sd, err := pki.UnmarshalSignedDescriptor(n.Raw)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := sd.MarshalBinary()
	if !bytes.Equal(raw, n.Raw) {
		t.Fatal("envelope re-encoding differs")
	}
	// The decoded descriptor does not alias the input.
	sd.Body[0] ^= 0xff
	if _, err := pki.VerifyDescriptor(n.Raw); err != nil {
		t.Fatal("decoded value aliases its input")
	}
}

func TestDescriptorTamper(t *testing.T) {
	n := pkitest.NewNode("provider1", pki.RoleProvider, 1, "tcp://[::1]:443")
	for i := range n.Raw {
		for _, mask := range []byte{0x01, 0x80} {
			raw := bytes.Clone(n.Raw)
			raw[i] ^= mask
			if _, err := pki.VerifyDescriptor(raw); err == nil {
				t.Fatalf("flipping bit %#x of byte %d went unnoticed", mask, i)
			} else if !errors.Is(err, pki.ErrMalformed) && !errors.Is(err, pki.ErrBadSignature) && !errors.Is(err, pki.ErrInvalid) {
				t.Fatalf("byte %d: unclassified error %v", i, err)
			}
		}
	}
	for i := range n.Signed.Signature {
		sd := &pki.SignedDescriptor{Body: n.Signed.Body, Signature: bytes.Clone(n.Signed.Signature)}
		sd.Signature[i] ^= 1
		if _, err := sd.Verify(); !errors.Is(err, pki.ErrBadSignature) {
			t.Fatalf("signature byte %d: %v", i, err)
		}
	}
	for i := range n.Signed.Body {
		sd := &pki.SignedDescriptor{Body: bytes.Clone(n.Signed.Body), Signature: n.Signed.Signature}
		sd.Body[i] ^= 1
		if _, err := sd.Verify(); err == nil {
			t.Fatalf("body byte %d", i)
		}
	}
	// Truncations and extensions.
	for i := range len(n.Raw) {
		if _, err := pki.VerifyDescriptor(n.Raw[:i]); !errors.Is(err, pki.ErrMalformed) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
	}
	if _, err := pki.VerifyDescriptor(append(bytes.Clone(n.Raw), 0)); !errors.Is(err, pki.ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func TestDescriptorWrongSigner(t *testing.T) {
	n := pkitest.NewNode("mix1", pki.RoleMix, 1, "tcp://127.0.0.1:3000")
	if _, err := pki.SignDescriptor(pkitest.Identity("other"), n.Descriptor); !errors.Is(err, pki.ErrInvalid) {
		t.Fatalf("signed with another key: %v", err)
	}
	// A signature by another key over the same body.
	other := pkitest.Identity("other")
	sig := other.Sign(append([]byte("chorus-descriptor-v1\x00"), n.Signed.Body...))
	if _, err := (&pki.SignedDescriptor{Body: n.Signed.Body, Signature: sig}).Verify(); !errors.Is(err, pki.ErrBadSignature) {
		t.Fatalf("foreign signature: %v", err)
	}
	// A signature without domain separation.
	sig = n.Identity.Sign(n.Signed.Body)
	if _, err := (&pki.SignedDescriptor{Body: n.Signed.Body, Signature: sig}).Verify(); !errors.Is(err, pki.ErrBadSignature) {
		t.Fatalf("signature without context: %v", err)
	}
}

func TestDescriptorValidate(t *testing.T) {
	other := pkitest.NewNode("other", pki.RoleMix, 5, "tcp://127.0.0.1:1")
	tests := []struct {
		name   string
		mutate func(d *pki.Descriptor)
		want   string
	}{
		{"empty name", func(d *pki.Descriptor) { d.Name = "" }, "name of 0 bytes"},
		{"long name", func(d *pki.Descriptor) { d.Name = strings.Repeat("a", 65) }, "name of 65 bytes"},
		{"name with space", func(d *pki.Descriptor) { d.Name = "a b" }, "not in [A-Za-z0-9._-]"},
		{"id mismatch", func(d *pki.Descriptor) { d.ID[0] ^= 1 }, "id does not match"},
		{"zero identity", func(d *pki.Descriptor) { d.IdentityKey = keys.IdentityPublicKey{} }, "zero identity key"},
		{"zero link key", func(d *pki.Descriptor) { d.LinkKey = keys.LinkPublicKey{} }, "zero link key"},
		{"role zero", func(d *pki.Descriptor) { d.Role = 0 }, "unknown role(0)"},
		{"role three", func(d *pki.Descriptor) { d.Role = 3 }, "unknown role(3)"},
		{"no addresses", func(d *pki.Descriptor) { d.Addresses = nil }, "0 addresses"},
		{"too many addresses", func(d *pki.Descriptor) {
			d.Addresses = []string{"tcp://a:1", "tcp://a:2", "tcp://a:3", "tcp://a:4", "tcp://a:5"}
		}, "5 addresses"},
		{"duplicate endpoint", func(d *pki.Descriptor) {
			d.Addresses = []string{"tcp://127.0.0.1:3000", "tcp4://127.0.0.1:3000"}
		}, "duplicate endpoint"},
		{"no scheme", func(d *pki.Descriptor) { d.Addresses = []string{"127.0.0.1:3000"} }, "want scheme://host:port"},
		{"bad scheme", func(d *pki.Descriptor) { d.Addresses = []string{"udp://127.0.0.1:3000"} }, "unsupported scheme"},
		{"no port", func(d *pki.Descriptor) { d.Addresses = []string{"tcp://127.0.0.1"} }, "want scheme://host:port"},
		{"port zero", func(d *pki.Descriptor) { d.Addresses = []string{"tcp://127.0.0.1:0"} }, "bad port"},
		{"port too large", func(d *pki.Descriptor) { d.Addresses = []string{"tcp://127.0.0.1:65536"} }, "bad port"},
		{"port leading zero", func(d *pki.Descriptor) { d.Addresses = []string{"tcp://127.0.0.1:080"} }, "bad port"},
		{"upper-case host", func(d *pki.Descriptor) { d.Addresses = []string{"tcp://Example.org:1"} }, "bad host name"},
		{"path", func(d *pki.Descriptor) { d.Addresses = []string{"tcp://example.org:1/x"} }, "bad port"},
		{"non-canonical ipv6", func(d *pki.Descriptor) { d.Addresses = []string{"tcp://[0:0::1]:1"} }, "not in canonical form"},
		{"ipv6 zone", func(d *pki.Descriptor) { d.Addresses = []string{"tcp://[fe80::1%eth0]:1"} }, "not in canonical form"},
		{"bracketed ipv4", func(d *pki.Descriptor) { d.Addresses = []string{"tcp://[127.0.0.1]:1"} }, "bad ip address syntax"},
		{"long address", func(d *pki.Descriptor) { d.Addresses = []string{"tcp://" + strings.Repeat("a", 125) + ":1"} }, "limit 128"},
		{"epoch overflow", func(d *pki.Descriptor) { d.Epoch = pki.MaxEpoch + 1 }, "too large"},
		{"missing sphinx key", func(d *pki.Descriptor) { delete(d.SphinxKeys, 6) }, "2 sphinx keys"},
		{"sphinx key for wrong epoch", func(d *pki.Descriptor) {
			delete(d.SphinxKeys, 7)
			d.SphinxKeys[8] = pkitest.Sphinx("x", 8).Public()
		}, "no sphinx key for epoch 7"},
		{"zero sphinx key", func(d *pki.Descriptor) { d.SphinxKeys[5] = keys.SphinxPublicKey{} }, "zero sphinx key for epoch 5"},
		{"reused sphinx key", func(d *pki.Descriptor) { d.SphinxKeys[7] = d.SphinxKeys[5] }, "reused"},
		{"other's id", func(d *pki.Descriptor) { d.ID = other.Descriptor.ID }, "id does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := pkitest.NewNode("node", pki.RoleMix, 5, "tcp://127.0.0.1:3000")
			tt.mutate(n.Descriptor)
			err := n.Descriptor.Validate()
			if !errors.Is(err, pki.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalid with %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "pki: validate descriptor: invalid: ") {
				t.Fatalf("error %q has the wrong shape", err)
			}
			if _, err := n.Descriptor.MarshalBinary(); !errors.Is(err, pki.ErrInvalid) {
				t.Fatalf("marshal: %v", err)
			}
		})
	}
	for _, ok := range []string{"tcp://127.0.0.1:1", "tcp6://[2001:db8::1]:65535", "tcp://mix-1.example.org:3000", "tcp4://localhost:9"} {
		n := pkitest.NewNode("node", pki.RoleMix, 5, ok)
		if err := n.Descriptor.Validate(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// TestDescriptorStrictDecoding feeds bodies that are well signed but not
// the canonical encoding of a descriptor.
func TestDescriptorStrictDecoding(t *testing.T) {
	n := pkitest.NewNode("node", pki.RoleMix, 5, "tcp://127.0.0.1:3000")
	var m map[uint64]any
	if err := cbor.Unmarshal(n.Signed.Body, &m); err != nil {
		t.Fatal(err)
	}
	det, _ := cbor.CoreDetEncOptions().EncMode()
	enc := func(v any) []byte {
		b, err := det.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	with := func(k uint64, v any) []byte {
		c := make(map[uint64]any, len(m))
		for kk, vv := range m {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return enc(c)
	}
	// The control: re-encoding the generic map gives the original.
	if !bytes.Equal(enc(m), n.Signed.Body) {
		t.Fatal("generic re-encoding differs; the cases below would prove nothing")
	}
	nonMinimal := bytes.Clone(n.Signed.Body)
	// Body starts with a map header (0xa8: 8 pairs); replace key 1 (0x01)
	// with its two-byte form 0x18 0x01.
	nonMinimal = append([]byte{nonMinimal[0], 0x18, 0x01}, nonMinimal[2:]...)
	cases := map[string][]byte{
		"unknown field":     with(99, "x"),
		"missing field":     with(7, nil),
		"null addresses":    with(6, cbor.RawMessage{0xf6}),
		"text for bytes":    with(3, "abc"),
		"short key":         with(4, []byte{1, 2, 3}),
		"long id":           with(2, make([]byte, 33)),
		"negative epoch":    with(7, -1),
		"non-minimal key":   nonMinimal,
		"trailing data":     append(bytes.Clone(n.Signed.Body), 0x00),
		"indefinite length": append([]byte{0xbf}, append(bytes.Clone(n.Signed.Body[1:]), 0xff)...),
		"tagged":            append([]byte{0xd8, 0x18}, n.Signed.Body...),
		"not a map":         enc([]int{1, 2}),
	}
	// Duplicate key: append a second key 1 by hand.
	dup := bytes.Clone(n.Signed.Body)
	dup[0]++
	dup = append(dup, 0x01, 0x61, 'x')
	cases["duplicate key"] = dup
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			raw := resignRaw(t, n, body)
			_, err := pki.VerifyDescriptor(raw)
			if !errors.Is(err, pki.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			if _, err := pki.UnmarshalDescriptor(body); !errors.Is(err, pki.ErrMalformed) {
				t.Fatalf("UnmarshalDescriptor: %v", err)
			}
		})
	}
	if _, err := pki.VerifyDescriptor(make([]byte, pki.MaxDescriptorSize+1)); !errors.Is(err, pki.ErrMalformed) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized: %v", err)
	}
}

func FuzzDescriptorDecode(f *testing.F) {
	n := pkitest.NewNode("node", pki.RoleMix, 5, "tcp://127.0.0.1:3000")
	p := pkitest.NewNode("provider", pki.RoleProvider, 1<<40, "tcp6://[2001:db8::1]:443")
	f.Add(n.Raw)
	f.Add(n.Signed.Body)
	f.Add(p.Raw)
	f.Add(p.Signed.Body)
	f.Fuzz(func(t *testing.T, b []byte) {
		if sd, err := pki.UnmarshalSignedDescriptor(b); err == nil {
			again, err := sd.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("signed descriptor round trip: %v", err)
			}
			_, _ = sd.Verify()
		}
		if d, err := pki.UnmarshalDescriptor(b); err == nil {
			again, err := d.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("descriptor round trip: %v", err)
			}
		}
	})
}
