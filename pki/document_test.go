package pki_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

func authorities(n int) ([]*keys.IdentityPrivateKey, []keys.IdentityPublicKey) {
	var priv []*keys.IdentityPrivateKey
	var pub []keys.IdentityPublicKey
	for i := range n {
		k := pkitest.Identity("authority-" + string(rune('a'+i)))
		priv = append(priv, k)
		pub = append(pub, k.Public())
	}
	return priv, pub
}

func signers(ks ...*keys.IdentityPrivateKey) []pki.Signer {
	out := make([]pki.Signer, len(ks))
	for i, k := range ks {
		out[i] = k
	}
	return out
}

func TestDocumentRoundTrip(t *testing.T) {
	doc, nodes := pkitest.Network(42, 3, 2, 2)
	priv, pub := authorities(3)
	sd := pkitest.Sign(doc, signers(priv...)...)
	raw, err := sd.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := pki.VerifyDocument(raw, pub, 2)
	if err != nil {
		t.Fatal(err)
	}
	body, err := got.MarshalBinary()
	if err != nil || !bytes.Equal(body, sd.Body) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	if got.Epoch != 42 || got.Geometry != doc.Geometry || got.Parameters != doc.Parameters || got.SharedRandom != doc.SharedRandom {
		t.Fatalf("decoded %+v", got)
	}
	if len(got.Layers) != 3 || len(got.Providers) != 2 {
		t.Fatal("wrong shape")
	}
	for _, n := range nodes {
		d, ok := got.Node(n.Descriptor.ID)
		if !ok || d.Name != n.Descriptor.Name {
			t.Fatalf("node %s not found", n.Descriptor.Name)
		}
	}
	again, err := pki.UnmarshalSignedDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	raw2, _ := again.MarshalBinary()
	if !bytes.Equal(raw, raw2) {
		t.Fatal("signed document re-encoding differs")
	}
	// Signatures are kept sorted by signer, whatever the signing order.
	sd2 := pkitest.Sign(doc, priv[2], priv[0], priv[1])
	raw3, _ := sd2.MarshalBinary()
	if !bytes.Equal(raw, raw3) {
		t.Fatal("signing order changed the encoding")
	}
}

func TestDocumentThreshold(t *testing.T) {
	doc, _ := pkitest.Network(1, 3, 1, 1)
	priv, pub := authorities(3)
	outsider := pkitest.Identity("outsider")

	verify := func(sd *pki.SignedDocument, pub []keys.IdentityPublicKey, threshold int) error {
		raw, err := sd.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		_, err = pki.VerifyDocument(raw, pub, threshold)
		return err
	}
	if err := verify(pkitest.Sign(doc, priv[0], priv[2]), pub, 2); err != nil {
		t.Fatalf("2 of 3: %v", err)
	}
	if err := verify(pkitest.Sign(doc, priv[1]), pub, 2); !errors.Is(err, pki.ErrNotEnoughSignatures) {
		t.Fatalf("1 of 3 with threshold 2: %v", err)
	}
	if err := verify(pkitest.Sign(doc, priv[1], outsider), pub, 2); !errors.Is(err, pki.ErrNotEnoughSignatures) {
		t.Fatalf("an outsider's signature counted: %v", err)
	}
	if err := verify(pkitest.Sign(doc), pub, 2); !errors.Is(err, pki.ErrNotEnoughSignatures) {
		t.Fatalf("no signatures: %v", err)
	}

	// Duplicate signatures from one authority count once, wherever they sit.
	one := pkitest.Sign(doc, priv[0])
	dup := &pki.SignedDocument{Body: one.Body, Signatures: []pki.Signature{one.Signatures[0], one.Signatures[0], one.Signatures[0]}}
	if err := verify(dup, pub, 2); !errors.Is(err, pki.ErrNotEnoughSignatures) {
		t.Fatalf("duplicates counted: %v", err)
	}
	// A bad signature by an authority followed by its good one: the good
	// one still counts.
	two := pkitest.Sign(doc, priv[0], priv[1])
	bad := pki.Signature{Signer: priv[0].Public(), Signature: bytes.Clone(two.Signatures[0].Signature)}
	bad.Signature[0] ^= 1
	mixed := &pki.SignedDocument{Body: two.Body, Signatures: append([]pki.Signature{bad}, two.Signatures...)}
	if err := verify(mixed, pub, 2); err != nil {
		t.Fatalf("a bad signature hid a good one: %v", err)
	}

	// The same authority listed twice in the configuration counts once.
	if err := verify(pkitest.Sign(doc, priv[0]), []keys.IdentityPublicKey{pub[0], pub[0], pub[1]}, 2); !errors.Is(err, pki.ErrNotEnoughSignatures) {
		t.Fatalf("configured duplicate: %v", err)
	}

	for _, tt := range []struct {
		pub       []keys.IdentityPublicKey
		threshold int
	}{
		{pub, 1}, {pub, 0}, {pub, 4}, {pub, -1}, {nil, 1}, {pub[:2], 1},
		{[]keys.IdentityPublicKey{{}}, 1},
	} {
		if err := verify(pkitest.Sign(doc, signers(priv...)...), tt.pub, tt.threshold); !errors.Is(err, pki.ErrThreshold) {
			t.Errorf("%d authorities, threshold %d: %v", len(tt.pub), tt.threshold, err)
		}
	}
	if err := verify(pkitest.Sign(doc, priv[0]), pub[:1], 1); err != nil {
		t.Fatalf("single authority: %v", err)
	}
}

func TestDocumentTamper(t *testing.T) {
	doc, _ := pkitest.Network(3, 3, 1, 1)
	priv, pub := authorities(3)
	sd := pkitest.Sign(doc, priv[0], priv[1])
	for i := range sd.Body {
		c := &pki.SignedDocument{Body: bytes.Clone(sd.Body), Signatures: sd.Signatures}
		c.Body[i] ^= 1
		if _, err := c.Verify(pub, 2); !errors.Is(err, pki.ErrNotEnoughSignatures) || !errors.Is(err, pki.ErrBadSignature) {
			t.Fatalf("body byte %d: %v", i, err)
		}
	}
	for s := range sd.Signatures {
		for i := range sd.Signatures[s].Signature {
			c := &pki.SignedDocument{Body: sd.Body}
			for j, sig := range sd.Signatures {
				if j == s {
					sig.Signature = bytes.Clone(sig.Signature)
					sig.Signature[i] ^= 0x40
				}
				c.Signatures = append(c.Signatures, sig)
			}
			if _, err := c.Verify(pub, 2); !errors.Is(err, pki.ErrBadSignature) {
				t.Fatalf("signature %d byte %d: %v", s, i, err)
			}
		}
	}
	// A signature made for another kind of object does not count.
	sig := priv[1].Sign(append([]byte("chorus-descriptor-v1\x00"), sd.Body...))
	c := &pki.SignedDocument{Body: sd.Body, Signatures: []pki.Signature{sd.Signatures[0], {Signer: priv[1].Public(), Signature: sig}}}
	if _, err := c.Verify(pub, 2); !errors.Is(err, pki.ErrBadSignature) {
		t.Fatalf("cross-context signature: %v", err)
	}
	raw, _ := sd.MarshalBinary()
	for i := range raw {
		r := bytes.Clone(raw)
		r[i] ^= 0x10
		if _, err := pki.VerifyDocument(r, pub, 2); err == nil {
			t.Fatalf("raw byte %d flipped unnoticed", i)
		}
	}
}

func TestAddSignature(t *testing.T) {
	doc, _ := pkitest.Network(3, 3, 1, 1)
	priv, pub := authorities(3)
	mine := pkitest.Sign(doc, priv[0])
	theirs := pkitest.Sign(doc, priv[1])
	if err := mine.AddSignature(theirs.Signatures[0]); err != nil {
		t.Fatal(err)
	}
	if err := mine.AddSignature(theirs.Signatures[0]); err != nil || len(mine.Signatures) != 2 {
		t.Fatalf("re-adding: %v, %d signatures", err, len(mine.Signatures))
	}
	bad := theirs.Signatures[0]
	bad.Signature = bytes.Clone(bad.Signature)
	bad.Signature[5] ^= 1
	if err := mine.AddSignature(bad); !errors.Is(err, pki.ErrBadSignature) {
		t.Fatalf("bad signature added: %v", err)
	}
	if _, err := mine.Verify(pub, 2); err != nil {
		t.Fatal(err)
	}
}

func TestDocumentValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(d *pki.Document)
		want   string
	}{
		{"epoch overflow", func(d *pki.Document) { d.Epoch = pki.MaxEpoch + 1 }, "too large"},
		{"hops mismatch", func(d *pki.Document) { d.Geometry.Hops = 4 }, "4 hops for 3 layers"},
		{"too few hops", func(d *pki.Document) { d.Geometry.Hops = 2 }, "2 hops, want 3"},
		{"no payload", func(d *pki.Document) { d.Geometry.UserPayloadLength = 0 }, "user payload of 0 bytes"},
		{"huge payload", func(d *pki.Document) { d.Geometry.UserPayloadLength = 1<<20 + 1 }, "user payload"},
		{"zero mu", func(d *pki.Document) { d.Parameters.MuMean = 0 }, "mu mean 0s"},
		{"negative lambda", func(d *pki.Document) { d.Parameters.LambdaPMean = -time.Second }, "lambda p mean -1s"},
		{"huge lambda", func(d *pki.Document) { d.Parameters.LambdaMMean = 25 * time.Hour }, "lambda m mean 25h0m0s"},
		{"max delay below mean", func(d *pki.Document) { d.Parameters.MaxDelay = time.Millisecond }, "max delay 1ms below mu mean 5ms"},
		{"no retrieval", func(d *pki.Document) { d.Parameters.RetrievalInterval = 0 }, "retrieval interval"},
		{"no layers", func(d *pki.Document) { d.Layers = nil; d.Geometry.Hops = 2 }, "hops"},
		{"empty layer", func(d *pki.Document) { d.Layers[1] = nil }, "layer 1 is empty"},
		{"no providers", func(d *pki.Document) { d.Providers = nil }, "no providers"},
		{"nil descriptor", func(d *pki.Document) { d.Layers[0][0] = nil }, "missing descriptor"},
		{"provider in a layer", func(d *pki.Document) { d.Layers[0][0] = d.Providers[0] }, `node "provider-0" is a provider`},
		{"mix as provider", func(d *pki.Document) { d.Providers[0] = d.Layers[0][0] }, `node "mix-0-0" is a mix`},
		{"duplicate node", func(d *pki.Document) { d.Layers[2] = append(d.Layers[2], d.Layers[0][0]) }, "duplicate id"},
		{"duplicate link key", func(d *pki.Document) {
			c := *d.Layers[1][0]
			c.LinkKey = d.Layers[0][0].LinkKey
			d.Layers[1][0] = &c
		}, "duplicate link key"},
		{"duplicate address", func(d *pki.Document) {
			c := *d.Layers[1][0]
			c.Addresses = []string{"tcp4://127.0.0.1:30000"}
			d.Layers[1][0] = &c
		}, "duplicate address 127.0.0.1:30000"},
		{"old descriptor", func(d *pki.Document) {
			d.Layers[1][0] = pkitest.NewNode("old", pki.RoleMix, 9, "tcp://127.0.0.1:9").Descriptor
		}, "descriptor for epoch 9 in the document for epoch 10"},
		{"invalid descriptor", func(d *pki.Document) {
			c := *d.Layers[2][0]
			c.SphinxKeys = nil
			d.Layers[2][0] = &c
		}, "layer 2: invalid: node \"mix-2-0\": 0 sphinx keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, _ := pkitest.Network(10, 3, 1, 1)
			tt.mutate(doc)
			err := doc.Validate()
			if !errors.Is(err, pki.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalid with %q", err, tt.want)
			}
			if _, err := pki.NewSignedDocument(doc); !errors.Is(err, pki.ErrInvalid) {
				t.Fatalf("NewSignedDocument: %v", err)
			}
		})
	}
}

func TestDocumentLookups(t *testing.T) {
	doc, nodes := pkitest.Network(1, 3, 2, 2)
	id := func(i int) pki.NodeID { return nodes[i].Descriptor.ID }
	// nodes: 0,1 layer 0; 2,3 layer 1; 4,5 layer 2; 6,7 providers.
	for i, want := range []int{0, 0, 1, 1, 2, 2, pki.ProviderLayer, pki.ProviderLayer} {
		if l, ok := doc.Layer(id(i)); !ok || l != want {
			t.Errorf("node %d: layer %d %v, want %d", i, l, ok, want)
		}
		d, ok := doc.NodeByLinkKey(nodes[i].Link.Public())
		if !ok || d.ID != id(i) {
			t.Errorf("node %d not found by link key", i)
		}
	}
	la := doc.LayerAssignment()
	if len(la) != 3 || la[1][0] != id(2) || la[2][1] != id(5) {
		t.Errorf("LayerAssignment = %x", la)
	}
	var unknown pki.NodeID
	if _, ok := doc.Layer(unknown); ok {
		t.Error("unknown node has a layer")
	}
	if _, ok := doc.NodeByLinkKey(pkitest.Link("nobody").Public()); ok {
		t.Error("unknown link key found")
	}
	allowed := map[[2]int]bool{{6, 0}: true, {7, 1}: true, {0, 2}: true, {1, 3}: true, {3, 4}: true, {4, 6}: true, {5, 7}: true}
	for from := range nodes {
		for to := range nodes {
			lf, _ := doc.Layer(id(from))
			lt, _ := doc.Layer(id(to))
			want := lf == pki.ProviderLayer && lt == 0 || lf >= 0 && lf < 2 && lt == lf+1 || lf == 2 && lt == pki.ProviderLayer
			if got := doc.MaySend(id(from), id(to)); got != want {
				t.Errorf("MaySend(%d, %d) = %v", from, to, got)
			}
			if allowed[[2]int{from, to}] && !want {
				t.Errorf("allowed pair %d→%d refused", from, to)
			}
		}
		if doc.MaySend(id(from), unknown) || doc.MaySend(unknown, id(from)) {
			t.Error("MaySend with an unknown node")
		}
	}
	for _, tt := range []struct{ from, to int }{{pki.ProviderLayer, pki.ProviderLayer}, {3, pki.ProviderLayer}, {-2, 0}, {0, 0}} {
		if doc.MaySendTo(tt.from, tt.to) {
			t.Errorf("MaySendTo(%d, %d)", tt.from, tt.to)
		}
	}
}

func FuzzDocumentDecode(f *testing.F) {
	doc, _ := pkitest.Network(5, 3, 2, 1)
	priv, pub := authorities(3)
	sd := pkitest.Sign(doc, priv[0], priv[1])
	raw, _ := sd.MarshalBinary()
	f.Add(raw)
	f.Add(sd.Body)
	small, _ := pkitest.Network(1, 1, 1, 1)
	sd = pkitest.Sign(small, priv[2])
	raw, _ = sd.MarshalBinary()
	f.Add(raw)
	f.Add(sd.Body)
	f.Fuzz(func(t *testing.T, b []byte) {
		if sd, err := pki.UnmarshalSignedDocument(b); err == nil {
			again, err := sd.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("signed document round trip: %v", err)
			}
			_, _ = sd.Verify(pub, 2)
		}
		if d, err := pki.UnmarshalDocument(b); err == nil {
			again, err := d.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("document round trip: %v", err)
			}
		}
	})
}
