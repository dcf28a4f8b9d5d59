package store

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// KDFParams are the Argon2id parameters that turn a passphrase into the key
// that unlocks the state. They are stored in the header, so a store opens
// with the parameters it was created (or last re-keyed) with.
type KDFParams struct {
	// Time is the number of passes over memory.
	Time uint32
	// MemoryKiB is the memory used, in KiB.
	MemoryKiB uint32
	// Threads is the parallelism.
	Threads uint8
}

// DefaultKDF is what Create uses unless told otherwise: 3 passes over
// 64 MiB with 2 lanes (RFC 9106's second recommended option, with more
// passes to make up for less memory; it takes a fraction of a second on
// the 2-core reference machine, measured in the package documentation).
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 2}

// TestingKDF is a deliberately weak setting that makes tests fast. A
// passphrase protected with it falls to a laptop; never use it for real
// state.
var TestingKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// Bounds on KDF parameters, checked on Create and on every header read, so
// a tampered header cannot make Open use unbounded memory or time.
const (
	maxKDFTime      = 64
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
	maxKDFThreads   = 64
)

func (p KDFParams) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime,
		p.Threads < 1 || p.Threads > maxKDFThreads,
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("%w: argon2id time %d, memory %d KiB, threads %d", ErrKDFParams, p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

const (
	headerName   = "state.header"
	dbName       = "state.db"
	tempPrefix   = ".state-tmp-"
	headerFormat = "chorus-state-v1"
	headerKDF    = "argon2id"
	saltSize     = 16
	fileMode     = 0o600
	dirMode      = 0o700
)

// keyCheck is the known constant sealed with the master key in the header:
// opening it proves the passphrase before anything else is touched.
var keyCheck = []byte("chorus key check")

// header is the JSON state.header file. Nothing in it is secret except
// under the passphrase: the salt and parameters are public, and Key is the
// master key sealed with the passphrase-derived key.
type header struct {
	Format    string `json:"format"`
	KDF       string `json:"kdf"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
	Key       []byte `json:"key"`
}

func (h *header) params() KDFParams {
	return KDFParams{Time: h.Time, MemoryKiB: h.MemoryKiB, Threads: h.Threads}
}

// ad binds the sealed master key to every other header field, so that
// changing the parameters or salt reads as a wrong passphrase rather than
// as a weaker derivation.
func (h *header) ad() []byte {
	var b []byte
	b = append(b, h.Format...)
	b = append(b, 0)
	b = append(b, h.KDF...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, h.Time)
	b = binary.BigEndian.AppendUint32(b, h.MemoryKiB)
	b = append(b, h.Threads)
	return append(b, h.Salt...)
}

// deriveKEK runs Argon2id. It is the slow step.
func deriveKEK(passphrase, salt []byte, p KDFParams) *[32]byte {
	k := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, 32)
	kek := new([32]byte)
	copy(kek[:], k)
	clear(k)
	return kek
}

// newHeader seals master under a fresh salt and passphrase.
func newHeader(rand io.Reader, passphrase []byte, p KDFParams, master *[masterKeySize]byte) (*header, error) {
	h := &header{Format: headerFormat, KDF: headerKDF, Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads,
		Salt: make([]byte, saltSize)}
	if _, err := io.ReadFull(rand, h.Salt); err != nil {
		return nil, fmt.Errorf("draw salt: %w", err)
	}
	kek := deriveKEK(passphrase, h.Salt, p)
	defer clear(kek[:])
	aead, err := chacha20poly1305.NewX(kek[:])
	if err != nil {
		panic("store: XChaCha20-Poly1305 refused a 32-byte key")
	}
	pt := append(append(make([]byte, 0, len(keyCheck)+masterKeySize), keyCheck...), master[:]...)
	defer clear(pt)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, fmt.Errorf("draw nonce: %w", err)
	}
	h.Key = aead.Seal(nonce, nonce, pt, h.ad())
	return h, nil
}

// unlock derives the key from the passphrase and opens the master key.
func (h *header) unlock(passphrase []byte) (*[masterKeySize]byte, error) {
	kek := deriveKEK(passphrase, h.Salt, h.params())
	defer clear(kek[:])
	aead, err := chacha20poly1305.NewX(kek[:])
	if err != nil {
		panic("store: XChaCha20-Poly1305 refused a 32-byte key")
	}
	if len(h.Key) < chacha20poly1305.NonceSizeX {
		return nil, ErrCorrupt
	}
	pt, err := aead.Open(nil, h.Key[:chacha20poly1305.NonceSizeX], h.Key[chacha20poly1305.NonceSizeX:], h.ad())
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	defer clear(pt)
	if len(pt) != len(keyCheck)+masterKeySize || subtle.ConstantTimeCompare(pt[:len(keyCheck)], keyCheck) != 1 {
		return nil, ErrCorrupt
	}
	master := new([masterKeySize]byte)
	copy(master[:], pt[len(keyCheck):])
	return master, nil
}

// readHeader loads and checks state.header. A missing header is ErrNoState.
func readHeader(dir string) (*header, error) {
	path := filepath.Join(dir, headerName)
	if err := checkMode(path, fileMode); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("read state header: %w", err)
	}
	h, err := parseHeader(raw)
	if err != nil {
		return nil, fmt.Errorf("read state header: %w", err)
	}
	return h, nil
}

// parseHeader decodes and checks the header's JSON: known fields only, the
// expected format and KDF, a full salt, and bounded parameters.
func parseHeader(raw []byte) (*header, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var h header
	if err := dec.Decode(&h); err != nil || dec.More() {
		return nil, ErrCorrupt
	}
	if h.Format != headerFormat || h.KDF != headerKDF || len(h.Salt) != saltSize {
		return nil, ErrCorrupt
	}
	if err := h.params().validate(); err != nil {
		return nil, ErrCorrupt
	}
	return &h, nil
}

// writeHeader writes state.header durably and atomically: a temporary
// file, fsync, then rename (replace) or link (create, never overwriting),
// then fsync of the directory.
func writeHeader(dir string, h *header, replace bool) error {
	raw, err := jsonHeader(h)
	if err != nil {
		return fmt.Errorf("write state header: %w", err)
	}
	return writeFileAtomic(dir, headerName, raw, replace)
}

func jsonHeader(h *header) ([]byte, error) {
	raw, err := json.MarshalIndent(h, "", "  ")
	return append(raw, '\n'), err
}

func writeFileAtomic(dir, name string, data []byte, replace bool) error {
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	err = tmp.Chmod(fileMode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	final := filepath.Join(dir, name)
	if replace {
		err = os.Rename(tmpName, final)
	} else {
		err = os.Link(tmpName, final)
	}
	if errors.Is(err, fs.ErrExist) {
		return ErrExists
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}

// removeTemps deletes temporary files a crash left behind.
func removeTemps(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// checkMode refuses a file that group or others can access. A missing file
// is not an error here.
func checkMode(path string, want fs.FileMode) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check state permissions: %w", err)
	}
	if got := st.Mode().Perm(); got&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %#o, want %#o", ErrPermissions, filepath.Base(path), got, want)
	}
	return nil
}
