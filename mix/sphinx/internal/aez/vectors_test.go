package aez

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// vectorDir finds ../shared/vectors/aez relative to the repository root (the
// directory holding go.mod). Without it the test fails under CI=true and is
// skipped otherwise.
func vectorDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			dir = ""
			break
		}
		dir = parent
	}
	if dir != "" {
		vd := filepath.Join(dir, "..", "shared", "vectors", "aez")
		if fi, err := os.Stat(vd); err == nil && fi.IsDir() {
			return vd
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("test vectors not found at ../shared/vectors/aez relative to the repository root")
	}
	t.Skip("test vectors not found at ../shared/vectors/aez relative to the repository root")
	return ""
}

func loadJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir(t), name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
}

// hexBytes is a hex string in the vector files.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// paths runs f once with the AES-NI round (when the CPU has it) and once with
// the portable round.
func paths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := useAESNI
	t.Cleanup(func() { useAESNI = saved })
	for _, ni := range []bool{true, false} {
		name := "generic"
		if ni {
			name = "aesni"
		}
		t.Run(name, func(t *testing.T) {
			if ni && !saved {
				t.Skip("no AES-NI on this machine")
			}
			useAESNI = ni
			defer func() { useAESNI = saved }()
			f(t)
		})
	}
}

type encryptVector struct {
	K     hexBytes   `json:"k"`
	Nonce hexBytes   `json:"nonce"`
	Data  []hexBytes `json:"data"`
	Tau   int        `json:"tau"`
	M     hexBytes   `json:"m"`
	C     hexBytes   `json:"c"`
}

func (v *encryptVector) ad() [][]byte {
	ad := make([][]byte, len(v.Data))
	for i, a := range v.Data {
		ad[i] = a
	}
	return ad
}

func TestEncryptVectors(t *testing.T) {
	for _, file := range []string{
		"encrypt.json",
		"encrypt_16_byte_key.json",
		"encrypt_33_byte_ad.json",
		"encrypt_no_ad.json",
	} {
		t.Run(file, func(t *testing.T) {
			var vs []encryptVector
			loadJSON(t, file, &vs)
			if len(vs) == 0 {
				t.Fatal("no vectors")
			}
			paths(t, func(t *testing.T) {
				for i, v := range vs {
					ad := v.ad()
					c := Encrypt(v.K, v.Nonce, ad, v.Tau, v.M, nil)
					if !bytes.Equal(c, v.C) {
						t.Fatalf("vector %d (|m|=%d, tau=%d): Encrypt\n got %x\nwant %x", i, len(v.M), v.Tau, c, v.C)
					}
					m, ok := Decrypt(v.K, v.Nonce, ad, v.Tau, v.C, nil)
					if !ok || !bytes.Equal(m, v.M) {
						t.Fatalf("vector %d (|m|=%d, tau=%d): Decrypt = %x, %v; want %x", i, len(v.M), v.Tau, m, ok, v.M)
					}

					// In place, in both directions.
					buf := append(make([]byte, 0, len(v.M)+v.Tau), v.M...)
					c = Encrypt(v.K, v.Nonce, ad, v.Tau, buf, buf[:0])
					if !bytes.Equal(c, v.C) {
						t.Fatalf("vector %d: in-place Encrypt = %x, want %x", i, c, v.C)
					}
					m, ok = Decrypt(v.K, v.Nonce, ad, v.Tau, c, c[:0])
					if !ok || !bytes.Equal(m, v.M) {
						t.Fatalf("vector %d: in-place Decrypt = %x, %v; want %x", i, m, ok, v.M)
					}
				}
			})
		})
	}
}

func TestExtractVectors(t *testing.T) {
	var vs []struct {
		A hexBytes `json:"a"`
		B hexBytes `json:"b"`
	}
	loadJSON(t, "extract.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for i, v := range vs {
		var s state
		s.init(v.A)
		got := append(append(append([]byte(nil), s.key[0][:]...), s.key[1][:]...), s.key[2][:]...)
		if !bytes.Equal(got, v.B) {
			t.Errorf("vector %d: Extract(%x) = %x, want %x", i, v.A, got, v.B)
		}
	}
}

func TestHashVectors(t *testing.T) {
	var vs []struct {
		K    hexBytes   `json:"k"`
		Tau  uint64     `json:"tau"`
		Data []hexBytes `json:"data"`
		V    hexBytes   `json:"v"`
	}
	loadJSON(t, "hash.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	paths(t, func(t *testing.T) {
		for i, v := range vs {
			// The first element of the vector is the nonce.
			ad := make([][]byte, len(v.Data)-1)
			for k := range ad {
				ad[k] = v.Data[k+1]
			}
			var s state
			var delta block
			s.init(v.K)
			s.hash(&delta, v.Tau, v.Data[0], ad)
			if !bytes.Equal(delta[:], v.V) {
				t.Errorf("vector %d: AEZ-hash = %x, want %x", i, delta, v.V)
			}
		}
	})
}

func TestPRFVectors(t *testing.T) {
	var vs []struct {
		K     hexBytes `json:"k"`
		Delta hexBytes `json:"delta"`
		Tau   int      `json:"tau"`
		R     hexBytes `json:"r"`
	}
	loadJSON(t, "prf.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	paths(t, func(t *testing.T) {
		for i, v := range vs {
			var s state
			var delta block
			s.init(v.K)
			copy(delta[:], v.Delta)
			got := make([]byte, v.Tau)
			s.prf(&delta, got)
			if !bytes.Equal(got, v.R) {
				t.Errorf("vector %d: AEZ-prf = %x, want %x", i, got, v.R)
			}
			if !s.prfEqual(&delta, v.R) {
				t.Errorf("vector %d: prfEqual rejects the vector", i)
			}
		}
	})
}
