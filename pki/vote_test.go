package pki_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

func testVote(t *testing.T, auth *keys.IdentityPrivateKey, epoch uint64) (*pki.Vote, *pki.Reveal) {
	t.Helper()
	_, nodes := pkitest.Network(epoch, 3, 1, 1)
	r := &pki.Reveal{Epoch: epoch, Authority: auth.Public(), Value: [32]byte{1, 2, 3}}
	v := &pki.Vote{
		Epoch:       epoch,
		Authority:   auth.Public(),
		Geometry:    pkitest.Geometry(3),
		Parameters:  pkitest.Parameters(),
		Commit:      r.Commit(),
		PriorLayers: [][]pki.NodeID{{nodes[2].Descriptor.ID, nodes[0].Descriptor.ID}, {nodes[1].Descriptor.ID}, {}},
	}
	for i := len(nodes) - 1; i >= 0; i-- {
		v.Descriptors = append(v.Descriptors, nodes[i].Signed)
	}
	return v, r
}

func TestVoteRoundTrip(t *testing.T) {
	priv, pub := authorities(3)
	v, _ := testVote(t, priv[1], 9)
	sv, err := pki.SignVote(priv[1], v)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sv.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := pki.VerifyVote(raw, pub)
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch != 9 || !got.Authority.Equal(priv[1].Public()) || got.Commit != v.Commit || len(got.Descriptors) != 4 ||
		got.Geometry != v.Geometry || got.Parameters != v.Parameters || len(got.PriorLayers) != 3 || len(got.PriorLayers[0]) != 2 {
		t.Fatalf("decoded %+v", got)
	}
	// Encoding is canonical: the decoded (sorted) vote signs to the same body.
	sv2, err := pki.SignVote(priv[1], got)
	if err != nil || !bytes.Equal(sv2.Body, sv.Body) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	if _, err := pki.VerifyVote(raw, pub[:1]); !errors.Is(err, pki.ErrUnknownSigner) {
		t.Fatalf("unknown voter: %v", err)
	}
	for i := range sv.Signature {
		c := &pki.SignedVote{Body: sv.Body, Signature: bytes.Clone(sv.Signature)}
		c.Signature[i] ^= 1
		if _, err := c.Verify(pub); !errors.Is(err, pki.ErrBadSignature) {
			t.Fatalf("signature byte %d: %v", i, err)
		}
	}
	for i := 0; i < len(raw); i += 7 {
		r := bytes.Clone(raw)
		r[i] ^= 4
		if _, err := pki.VerifyVote(r, pub); err == nil {
			t.Fatalf("byte %d flipped unnoticed", i)
		}
	}
	if _, err := pki.SignVote(priv[0], v); !errors.Is(err, pki.ErrInvalid) {
		t.Fatalf("signed by another authority: %v", err)
	}
}

func TestVoteValidate(t *testing.T) {
	priv, _ := authorities(1)
	other := pkitest.NewNode("mix-0-0", pki.RoleMix, 9, "tcp://127.0.0.1:4000")
	tests := []struct {
		name   string
		mutate func(v *pki.Vote)
		is     error
		want   string
	}{
		{"descriptor for another epoch", func(v *pki.Vote) {
			v.Descriptors[0] = pkitest.NewNode("late", pki.RoleMix, 10, "tcp://127.0.0.1:9").Signed
		}, pki.ErrWrongEpoch, "for epoch 10, vote for epoch 9"},
		{"two descriptors for one node", func(v *pki.Vote) { v.Descriptors = append(v.Descriptors, other.Signed) }, pki.ErrInvalid, "two descriptors for one node"},
		{"bad descriptor signature", func(v *pki.Vote) {
			v.Descriptors[0] = &pki.SignedDescriptor{Body: v.Descriptors[0].Body, Signature: make([]byte, 64)}
		}, pki.ErrBadSignature, "bad signature"},
		{"nil descriptor", func(v *pki.Vote) { v.Descriptors[1] = nil }, pki.ErrInvalid, "missing"},
		{"prior node twice", func(v *pki.Vote) { v.PriorLayers[2] = append(v.PriorLayers[2], v.PriorLayers[0][0]) }, pki.ErrInvalid, "listed twice"},
		{"too many prior layers", func(v *pki.Vote) { v.PriorLayers = make([][]pki.NodeID, 9) }, pki.ErrInvalid, "9 prior layers"},
		{"bad parameters", func(v *pki.Vote) { v.Parameters.MuMean = 0 }, pki.ErrInvalid, "mu mean"},
		{"bad geometry", func(v *pki.Vote) { v.Geometry.Hops = 1 }, pki.ErrInvalid, "1 hops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := testVote(t, priv[0], 9)
			tt.mutate(v)
			err := v.Validate()
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %v with %q", err, tt.is, tt.want)
			}
			if _, err := pki.SignVote(priv[0], v); err == nil {
				t.Fatal("signed an invalid vote")
			}
		})
	}
}

func TestReveal(t *testing.T) {
	priv, pub := authorities(3)
	r, err := pki.NewReveal(bytes.NewReader(bytes.Repeat([]byte{7}, 32)), 4, priv[2].Public())
	if err != nil {
		t.Fatal(err)
	}
	sr, err := pki.SignReveal(priv[2], r)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := sr.MarshalBinary()
	got, err := pki.VerifyReveal(raw, pub)
	if err != nil || got.Value != r.Value || got.Epoch != 4 || got.Commit() != r.Commit() {
		t.Fatalf("round trip: %v", err)
	}
	// The commit binds epoch, authority and value.
	for _, c := range []pki.Reveal{
		{Epoch: 5, Authority: r.Authority, Value: r.Value},
		{Epoch: 4, Authority: priv[1].Public(), Value: r.Value},
		{Epoch: 4, Authority: r.Authority, Value: [32]byte{7}},
	} {
		if c.Commit() == r.Commit() {
			t.Fatalf("commit ignores a field: %+v", c)
		}
	}
	if _, err := pki.VerifyReveal(raw, pub[:2]); !errors.Is(err, pki.ErrUnknownSigner) {
		t.Fatalf("unknown: %v", err)
	}
	sr.Signature[3] ^= 1
	raw, _ = sr.MarshalBinary()
	if _, err := pki.VerifyReveal(raw, pub); !errors.Is(err, pki.ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := pki.NewReveal(bytes.NewReader(nil), 4, priv[0].Public()); err == nil {
		t.Fatal("short rand accepted")
	}
}

func FuzzVoteDecode(f *testing.F) {
	priv, pub := authorities(2)
	v := &pki.Vote{Epoch: 3, Authority: priv[0].Public(), Geometry: pkitest.Geometry(3), Parameters: pkitest.Parameters()}
	_, nodes := pkitest.Network(3, 3, 1, 1)
	v.Descriptors = []*pki.SignedDescriptor{nodes[0].Signed, nodes[3].Signed}
	v.PriorLayers = [][]pki.NodeID{{nodes[0].Descriptor.ID}}
	sv, err := pki.SignVote(priv[0], v)
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := sv.MarshalBinary()
	f.Add(raw)
	sr, _ := pki.SignReveal(priv[1], &pki.Reveal{Epoch: 3, Authority: priv[1].Public()})
	rraw, _ := sr.MarshalBinary()
	f.Add(rraw)
	f.Fuzz(func(t *testing.T, b []byte) {
		if sv, err := pki.UnmarshalSignedVote(b); err == nil {
			again, err := sv.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("signed vote round trip: %v", err)
			}
			if v, err := sv.Verify(pub); err == nil {
				signer := priv[0]
				if !signer.Public().Equal(v.Authority) {
					signer = priv[1]
				}
				again, err := pki.SignVote(signer, v)
				if err != nil || !bytes.Equal(again.Body, sv.Body) {
					t.Fatalf("vote round trip: %v", err)
				}
			}
		}
		if sr, err := pki.UnmarshalSignedReveal(b); err == nil {
			again, err := sr.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("signed reveal round trip: %v", err)
			}
			_, _ = sr.Verify(pub)
		}
	})
}
