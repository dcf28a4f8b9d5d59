package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactedPrinting(t *testing.T) {
	id, _ := GenerateIdentityKey(rand.Reader)
	link, _ := GenerateLinkKey(rand.Reader)
	sx, _ := GenerateSphinxKey(rand.Reader)
	secrets := [][]byte{id.seed(), link.Scalar()[:], sx.Scalar()[:]}
	values := []any{id, link, sx, id.Public(), link.Public(), sx.Public(), *id, *link, *sx}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
			out := fmt.Sprintf(verb, v)
			for _, s := range secrets {
				for _, enc := range []string{hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)), fmt.Sprint(s[:8])[1:20]} {
					if strings.Contains(out, enc) {
						t.Fatalf("%T printed with %s leaks key bytes: %s", v, verb, out)
					}
				}
			}
		}
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("k", "key", v)
		for _, s := range secrets {
			if strings.Contains(buf.String(), hex.EncodeToString(s)) {
				t.Fatalf("%T leaks through slog: %s", v, buf.String())
			}
		}
	}
	if got := link.Public().String(); !strings.HasPrefix(got, "link:") || len(got) != len("link:")+8 {
		t.Fatalf("fingerprint = %q", got)
	}
}

func TestEqualAndZero(t *testing.T) {
	a, _ := GenerateLinkKey(rand.Reader)
	b, _ := GenerateLinkKey(rand.Reader)
	if !a.Public().Equal(a.Public()) || a.Public().Equal(b.Public()) {
		t.Fatal("Equal is wrong")
	}
	c, err := NewLinkPrivateKey(a.Scalar()[:])
	if err != nil || !c.Public().Equal(a.Public()) {
		t.Fatal("same scalar gave a different public key")
	}
	a.Zero()
	if *a.Scalar() != [ScalarSize]byte{} {
		t.Fatal("Zero left key bytes")
	}
	id, _ := GenerateIdentityKey(rand.Reader)
	id.Zero()
	if !bytes.Equal(id.priv[:], make([]byte, len(id.priv))) {
		t.Fatal("identity Zero left key bytes")
	}
	var z LinkPublicKey
	if !z.IsZero() || b.Public().IsZero() {
		t.Fatal("IsZero is wrong")
	}
}

func TestSizes(t *testing.T) {
	for _, n := range []int{0, 31, 33, 64} {
		b := make([]byte, n)
		if _, err := NewLinkPublicKey(b); !errors.Is(err, ErrKeySize) {
			t.Errorf("link public %d bytes: %v", n, err)
		}
		if _, err := NewSphinxPrivateKey(b); !errors.Is(err, ErrKeySize) {
			t.Errorf("sphinx private %d bytes: %v", n, err)
		}
		if _, err := NewIdentityPrivateKey(b); !errors.Is(err, ErrKeySize) {
			t.Errorf("identity private %d bytes: %v", n, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	k, _ := GenerateIdentityKey(rand.Reader)
	msg := []byte("descriptor")
	sig := k.Sign(msg)
	if !k.Public().Verify(msg, sig) {
		t.Fatal("valid signature refused")
	}
	sig[0] ^= 1
	if k.Public().Verify(msg, sig) || k.Public().Verify(msg, sig[:10]) {
		t.Fatal("bad signature accepted")
	}
	if k.Public().NodeID() == ([32]byte{}) {
		t.Fatal("empty node ID")
	}
}

func TestTextRoundTrip(t *testing.T) {
	k, _ := GenerateSphinxKey(rand.Reader)
	txt, _ := k.Public().MarshalText()
	var back SphinxPublicKey
	if err := back.UnmarshalText(txt); err != nil || !back.Equal(k.Public()) {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "AAAA", string(txt[:len(txt)-4]), string(txt) + "AAAA", "!" + string(txt[1:])} {
		if err := back.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func keyDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "data")
	return dir
}

func TestLoadOrCreate(t *testing.T) {
	dir := keyDir(t)
	p := filepath.Join(dir, "identity.pem")
	a, err := LoadOrCreateIdentity(p, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateIdentity(p, rand.Reader)
	if err != nil || !a.Public().Equal(b.Public()) {
		t.Fatalf("reload gave another key: %v", err)
	}
	for path, want := range map[string]fs.FileMode{dir: dirMode, p: fileMode} {
		st, _ := os.Stat(path)
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
	lp := filepath.Join(dir, "link.pem")
	l1, err := LoadOrCreateLink(lp, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := LoadLink(lp)
	if err != nil || !l1.Public().Equal(l2.Public()) {
		t.Fatal("link reload")
	}
	// A key file of another kind is refused.
	if _, err := LoadIdentity(lp); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("link file as identity: %v", err)
	}
	sp := filepath.Join(dir, "sphinx-7.pem")
	s, _ := GenerateSphinxKey(rand.Reader)
	if err := SaveSphinx(sp, s); err != nil {
		t.Fatal(err)
	}
	if err := SaveSphinx(sp, s); err == nil {
		t.Fatal("SaveSphinx overwrote an existing key")
	}
	s2, err := LoadSphinx(sp)
	if err != nil || !s2.Public().Equal(s.Public()) {
		t.Fatal("sphinx reload")
	}
	if err := Erase(sp); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSphinx(sp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("erased key still loads: %v", err)
	}
	if err := Erase(sp); err != nil {
		t.Fatalf("erase of a missing file: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("stray files left: %v", entries)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := keyDir(t)
	p := filepath.Join(dir, "link.pem")
	if _, err := LoadOrCreateLink(p, rand.Reader); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(p)

	t.Run("file permissions", func(t *testing.T) {
		os.Chmod(p, 0o644)
		defer os.Chmod(p, 0o600)
		if _, err := LoadLink(p); !errors.Is(err, ErrPermissions) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("directory permissions", func(t *testing.T) {
		os.Chmod(dir, 0o755)
		defer os.Chmod(dir, 0o700)
		if _, err := LoadOrCreateLink(p, rand.Reader); !errors.Is(err, ErrPermissions) {
			t.Fatalf("got %v", err)
		}
	})
	corrupt := func(name string, data []byte) {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(p, good, 0o600)
			_, err := LoadLink(p)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(err.Error(), string(good[30:50])) {
				t.Fatal("error echoes file content")
			}
		})
	}
	corrupt("empty", nil)
	corrupt("garbage", []byte("not a key\n"))
	corrupt("truncated", good[:len(good)-30])
	corrupt("trailing data", append(append([]byte(nil), good...), "junk"...))
	// Flip one base64 character in the body: the halves disagree.
	flipped := append([]byte(nil), good...)
	i := bytes.IndexByte(flipped, '\n') + 5
	if flipped[i] == 'A' {
		flipped[i] = 'B'
	} else {
		flipped[i] = 'A'
	}
	corrupt("flipped", flipped)
	// A file of the right kind but wrong size.
	corrupt("short body", []byte("-----BEGIN CHORUS LINK PRIVATE KEY-----\nAAAA\n-----END CHORUS LINK PRIVATE KEY-----\n"))

	if _, err := LoadLink(filepath.Join(dir, "missing.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func FuzzUnmarshalText(f *testing.F) {
	k, _ := GenerateLinkKey(rand.Reader)
	txt, _ := k.Public().MarshalText()
	f.Add(txt)
	f.Add([]byte("AAAA"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p LinkPublicKey
		if err := p.UnmarshalText(b); err != nil {
			return
		}
		out, _ := p.MarshalText()
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip %q -> %q", b, out)
		}
	})
}
