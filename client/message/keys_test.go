package message

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestKeyRedacted(t *testing.T) {
	k := newKey(t)
	secret := hex.EncodeToString(k.Scalar()[:])
	for _, v := range []any{k, *k, k.Public()} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d"} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(strings.ToLower(out), secret[:16]) || strings.Contains(out, fmt.Sprint(k.Scalar()[:6])[1:12]) {
				t.Fatalf("%T printed with %s leaks: %s", v, verb, out)
			}
		}
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("k", "key", v)
		if strings.Contains(buf.String(), secret[:16]) {
			t.Fatalf("%T leaks through slog", v)
		}
	}
	if s := k.Public().String(); !strings.HasPrefix(s, "message:") || len(s) != len("message:")+8 {
		t.Fatalf("fingerprint %q", s)
	}
}

func TestKeys(t *testing.T) {
	a := testKey(t, 1)
	b, err := NewPrivateKey(a.Scalar()[:])
	if err != nil || !b.Public().Equal(a.Public()) {
		t.Fatal("same scalar, different public key")
	}
	p, err := NewPublicKey(a.Public().Bytes())
	if err != nil || !p.Equal(a.Public()) || p.IsZero() {
		t.Fatal("public key round trip")
	}
	if _, err := NewPublicKey(make([]byte, 31)); !errors.Is(err, ErrKey) {
		t.Fatal("short key accepted")
	}
	if _, err := NewPrivateKey(make([]byte, 33)); !errors.Is(err, ErrKey) {
		t.Fatal("long private key accepted")
	}
	// Low-order points (RFC 7748 §6.1 and Curve25519's small subgroup).
	for _, h := range []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	} {
		b, _ := hex.DecodeString(h)
		if _, err := NewPublicKey(b); !errors.Is(err, ErrKey) {
			t.Errorf("low-order point %s accepted", h[:8])
		}
	}
	if a.KEMPrivateKey() == nil || a.Public().KEMPublicKey() == nil {
		t.Fatal("no KEM key")
	}
	a.Zero()
	if *a.Scalar() != [KeySize]byte{} || a.KEMPrivateKey() != nil {
		t.Fatal("Zero left key material")
	}
}
