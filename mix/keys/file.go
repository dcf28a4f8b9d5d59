package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Errors from loading key files. They are wrapped with the file's path; the
// key bytes themselves never appear in an error.
var (
	// ErrPermissions: the key file or its directory is readable or writable
	// by group or others.
	ErrPermissions = errors.New("keys: unsafe permissions")
	// ErrCorrupt: the file is not a well-formed key file of the expected
	// kind, or its private and public halves disagree.
	ErrCorrupt = errors.New("keys: corrupted key file")
)

const (
	fileMode = 0o600
	dirMode  = 0o700

	pemIdentity = "CHORUS IDENTITY PRIVATE KEY"
	pemLink     = "CHORUS LINK PRIVATE KEY"
	pemSphinx   = "CHORUS SPHINX PRIVATE KEY"
)

// LoadOrCreateIdentity loads the identity key at path, or creates it (and its
// directory, mode 0700) from rand if the file does not exist.
func LoadOrCreateIdentity(path string, rand io.Reader) (*IdentityPrivateKey, error) {
	k, err := LoadIdentity(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = GenerateIdentityKey(rand); err != nil {
		return nil, err
	}
	if err := writeKeyFile(path, pemIdentity, k.seed(), k.pub.k[:]); err != nil {
		k.Zero()
		return nil, err
	}
	return k, nil
}

// LoadIdentity loads the identity key at path.
func LoadIdentity(path string) (*IdentityPrivateKey, error) {
	priv, pub, err := readKeyFile(path, pemIdentity)
	if err != nil {
		return nil, err
	}
	defer clear(priv)
	k, err := NewIdentityPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, ErrCorrupt)
	}
	if !k.pub.k.equal((*publicKey)(pub)) {
		k.Zero()
		return nil, fmt.Errorf("load %s: %w: public key does not match", path, ErrCorrupt)
	}
	return k, nil
}

// LoadOrCreateLink loads the link key at path, or creates it from rand if the
// file does not exist.
func LoadOrCreateLink(path string, rand io.Reader) (*LinkPrivateKey, error) {
	k, err := LoadLink(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = GenerateLinkKey(rand); err != nil {
		return nil, err
	}
	if err := writeKeyFile(path, pemLink, k.x.scalar[:], k.x.pub[:]); err != nil {
		k.Zero()
		return nil, err
	}
	return k, nil
}

// LoadLink loads the link key at path.
func LoadLink(path string) (*LinkPrivateKey, error) {
	k := new(LinkPrivateKey)
	if err := loadX25519(path, pemLink, &k.x); err != nil {
		return nil, err
	}
	return k, nil
}

// SaveSphinx writes a Sphinx key to path (which must not exist yet).
func SaveSphinx(path string, k *SphinxPrivateKey) error {
	return writeKeyFile(path, pemSphinx, k.x.scalar[:], k.x.pub[:])
}

// LoadSphinx loads the Sphinx key at path.
func LoadSphinx(path string) (*SphinxPrivateKey, error) {
	k := new(SphinxPrivateKey)
	if err := loadX25519(path, pemSphinx, &k.x); err != nil {
		return nil, err
	}
	return k, nil
}

// Erase overwrites the key file at path with random bytes, syncs it and
// removes it. A missing file is not an error.
func Erase(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("erase key file: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		_, err = io.CopyN(f, rand.Reader, st.Size())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("erase key file: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("erase key file: %w", err)
	}
	return nil
}

func loadX25519(path, kind string, x *x25519Private) error {
	priv, pub, err := readKeyFile(path, kind)
	if err != nil {
		return err
	}
	defer clear(priv)
	if err := x.set(priv); err != nil {
		return fmt.Errorf("load %s: %w", path, ErrCorrupt)
	}
	if !x.pub.equal((*publicKey)(pub)) {
		clear(x.scalar[:])
		return fmt.Errorf("load %s: %w: public key does not match", path, ErrCorrupt)
	}
	return nil
}

// readKeyFile checks permissions and returns the private and public halves
// of a key file of the given PEM type. The caller wipes priv.
func readKeyFile(path, kind string) (priv, pub []byte, err error) {
	if err := checkMode(filepath.Dir(path), dirMode); err != nil {
		return nil, nil, err
	}
	if err := checkMode(path, fileMode); err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load key: %w", err)
	}
	defer clear(raw)
	block, rest := pem.Decode(raw)
	if block == nil || block.Type != kind || len(bytes.TrimSpace(rest)) != 0 || len(block.Headers) != 0 {
		return nil, nil, fmt.Errorf("load %s: %w: not a %s", path, ErrCorrupt, kind)
	}
	defer clear(block.Bytes)
	if len(block.Bytes) != 2*PublicKeySize {
		return nil, nil, fmt.Errorf("load %s: %w: %d key bytes, want %d", path, ErrCorrupt, len(block.Bytes), 2*PublicKeySize)
	}
	priv = append([]byte(nil), block.Bytes[:PublicKeySize]...)
	pub = append([]byte(nil), block.Bytes[PublicKeySize:]...)
	return priv, pub, nil
}

// checkMode refuses a file or directory that group or others can access.
// A missing path is reported as fs.ErrNotExist.
func checkMode(path string, want fs.FileMode) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("load key: %w", err)
	}
	if got := st.Mode().Perm(); got&0o077 != 0 {
		return fmt.Errorf("%s: %w: mode %#o, want %#o", path, ErrPermissions, got, want)
	}
	return nil
}

// writeKeyFile creates path (mode 0600, never overwriting) in a directory of
// mode 0700, durably.
func writeKeyFile(path, kind string, priv, pub []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	if err := checkMode(dir, dirMode); err != nil {
		return err
	}
	body := make([]byte, 0, len(priv)+len(pub))
	body = append(append(body, priv...), pub...)
	defer clear(body)
	out := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: body})
	defer clear(out)

	// Write a temporary file and link it into place, so a crash never leaves
	// a half-written key under the final name and an existing key is never
	// replaced.
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(fileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return fmt.Errorf("create key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("create key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if err := os.Link(tmpName, path); err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync key directory: %w", err)
	}
	return nil
}
