package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/chorus-mixnet/chorus/client/message"
)

func TestCreateOpenKeys(t *testing.T) {
	s, dir := newStore(t)
	mk, err := s.MessageKey()
	if err != nil {
		t.Fatal(err)
	}
	lk, err := s.LinkKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetConfig("provider", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, dir)
	mk2, _ := s.MessageKey()
	lk2, _ := s.LinkKey()
	if !mk2.Public().Equal(mk.Public()) || !lk2.Public().Equal(lk.Public()) {
		t.Fatal("keys changed across a reopen")
	}
	if mk.Public().Equal(message.PublicKey{}) || bytes.Equal(mk.Scalar()[:], lk.Scalar()[:]) {
		t.Fatal("keys not generated independently")
	}
	if v, err := s.Config("provider"); err != nil || string(v) != "abc" {
		t.Fatalf("config: %q %v", v, err)
	}
	if _, err := s.Config("missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing config: %v", err)
	}
	for _, name := range []string{"", filepath.Join(dir, headerName), filepath.Join(dir, dbName)} {
		p := dir
		if name != "" {
			p = name
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(fileMode)
		if name == "" {
			want = dirMode
		}
		if st.Mode().Perm() != want {
			t.Fatalf("%s has mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	if err := s.Close(); err != nil || s.Close() != nil {
		t.Fatal("Close not idempotent")
	}
	if _, err := s.MessageKey(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := s.Contacts(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	s, dir := newStore(t)
	s.Close()
	_, err := Open(dir, []byte("correct horse battery stapler"), testOpts())
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if err.Error() != "store: wrong passphrase" {
		t.Fatalf("unclear error %q", err)
	}
	if _, err := Open(dir, nil, testOpts()); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("empty passphrase: %v", err)
	}
	s, err = Open(dir, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestChangePassphrase(t *testing.T) {
	s, dir := newStore(t)
	card := randomCard(t)
	if err := s.AddContact("alice", card); err != nil {
		t.Fatal(err)
	}
	newPass := []byte("another passphrase")
	if err := s.ChangePassphrase(newPass, KDFParams{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir, testPass, testOpts()); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase after change: %v", err)
	}
	s, err := Open(dir, newPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, err := s.Contact("alice"); err != nil || !c.Card.Equal(card) {
		t.Fatalf("contact after passphrase change: %v", err)
	}
	if err := s.ChangePassphrase(nil, KDFParams{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty passphrase: %v", err)
	}
	if err := s.ChangePassphrase(newPass, KDFParams{Time: 1000, MemoryKiB: 64, Threads: 1}); !errors.Is(err, ErrKDFParams) {
		t.Fatalf("absurd KDF: %v", err)
	}
}

func TestCreateAndOpenRefusals(t *testing.T) {
	s, dir := newStore(t)
	if _, err := Create(dir, testPass, testOpts()); !errors.Is(err, ErrExists) {
		t.Fatalf("create over a state: %v", err)
	}
	// The bbolt lock keeps a second opener out.
	if _, err := Open(dir, testPass, testOpts()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	empty := filepath.Join(t.TempDir(), "empty")
	os.Mkdir(empty, dirMode)
	if _, err := Open(empty, testPass, testOpts()); !errors.Is(err, ErrNoState) {
		t.Fatalf("empty directory: %v", err)
	}
	if _, err := Create(filepath.Join(t.TempDir(), "x"), nil, testOpts()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty passphrase: %v", err)
	}
	if _, err := Create(filepath.Join(t.TempDir(), "x"), testPass, Options{KDF: KDFParams{Time: 1, MemoryKiB: 1, Threads: 1}}); !errors.Is(err, ErrKDFParams) {
		t.Fatalf("tiny KDF memory: %v", err)
	}
	open := t.TempDir()
	os.Chmod(open, 0o755)
	if _, err := Create(open, testPass, testOpts()); !errors.Is(err, ErrPermissions) {
		t.Fatalf("world-readable directory: %v", err)
	}
	os.Chmod(dir, 0o750)
	if _, err := Open(dir, testPass, testOpts()); !errors.Is(err, ErrPermissions) {
		t.Fatalf("group-readable directory: %v", err)
	}
	os.Chmod(dir, dirMode)
	os.Chmod(filepath.Join(dir, dbName), 0o644)
	if _, err := Open(dir, testPass, testOpts()); !errors.Is(err, ErrPermissions) {
		t.Fatalf("world-readable database: %v", err)
	}
	os.Chmod(filepath.Join(dir, dbName), fileMode)
	os.Remove(filepath.Join(dir, dbName))
	if _, err := Open(dir, testPass, testOpts()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("missing database: %v", err)
	}
}

// TestCreateAfterCrash: a Create that died before writing the header left
// a database; Create starts over.
func TestCreateAfterCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	os.MkdirAll(dir, dirMode)
	os.WriteFile(filepath.Join(dir, dbName), []byte("half a database"), fileMode)
	os.WriteFile(filepath.Join(dir, tempPrefix+"123"), []byte("half a header"), fileMode)
	s, err := Create(dir, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, tempPrefix+"123")); err == nil {
		t.Fatal("temporary file left behind")
	}
	s, err = Open(dir, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestTamper: an attacker without the passphrase who edits the files gets
// ErrCorrupt or ErrWrongPassphrase, never altered data.
func TestTamper(t *testing.T) {
	s, dir := newStore(t)
	a, b := randomCard(t), randomCard(t)
	s.AddContact("alice", a)
	s.AddContact("bob", b)
	s.AddContact("carol", randomCard(t))
	s.Close()

	// Edit the database directly: swap two contact records, or flip bytes
	// of each. The contacts are the only bucket with three records.
	edit := func(fn func(vals map[string][]byte, bk *bolt.Bucket)) {
		db, err := bolt.Open(filepath.Join(dir, dbName), fileMode, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
				vals := map[string][]byte{}
				bk.ForEach(func(k, v []byte) error { vals[string(k)] = bytes.Clone(v); return nil })
				if len(vals) == 3 {
					fn(vals, bk)
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	contactsOK := func() error {
		s, err := Open(dir, testPass, testOpts())
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Contacts()
		return err
	}
	if err := contactsOK(); err != nil {
		t.Fatal(err)
	}
	var saved map[string][]byte
	edit(func(vals map[string][]byte, bk *bolt.Bucket) {
		saved = vals
		var ks []string
		for k := range vals {
			ks = append(ks, k)
		}
		bk.Put([]byte(ks[0]), vals[ks[1]])
		bk.Put([]byte(ks[1]), vals[ks[0]])
	})
	if len(saved) != 3 {
		t.Fatal("contacts bucket not found")
	}
	if err := contactsOK(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped records: %v", err)
	}
	for k, v := range saved {
		for _, i := range []int{0, 30, len(v) - 1} {
			edit(func(_ map[string][]byte, bk *bolt.Bucket) {
				for k2, v2 := range saved {
					bk.Put([]byte(k2), v2)
				}
				bad := bytes.Clone(v)
				bad[i] ^= 1
				bk.Put([]byte(k), bad)
			})
			if err := contactsOK(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flipped byte %d: %v", i, err)
			}
		}
	}

	// Edit the header: weaker parameters or another salt read as a wrong
	// passphrase; garbage as corrupt.
	raw, _ := os.ReadFile(filepath.Join(dir, headerName))
	for _, c := range []struct {
		old, new string
		want     error
	}{
		{`"time": 1`, `"time": 2`, ErrWrongPassphrase},
		{`"memory_kib": 64`, `"memory_kib": 128`, ErrWrongPassphrase},
		{`"salt": "`, `"salt": "AA`, ErrCorrupt},
		{`"format": "chorus-state-v1"`, `"format": "chorus-state-v2"`, ErrCorrupt},
		{`"memory_kib": 64`, `"memory_kib": 99999999`, ErrCorrupt},
		{`{`, `{"extra": 1, `, ErrCorrupt},
	} {
		if !bytes.Contains(raw, []byte(c.old)) {
			t.Fatalf("header has no %s:\n%s", c.old, raw)
		}
		os.WriteFile(filepath.Join(dir, headerName), bytes.Replace(raw, []byte(c.old), []byte(c.new), 1), fileMode)
		if _, err := Open(dir, testPass, testOpts()); !errors.Is(err, c.want) {
			t.Fatalf("header %s → %s: %v, want %v", c.old, c.new, err, c.want)
		}
	}

	// Another state's header with the same passphrase: it unlocks, but the
	// database is not under its key.
	_, other := newStore(t)
	otherHeader, _ := os.ReadFile(filepath.Join(other, headerName))
	os.WriteFile(filepath.Join(dir, headerName), otherHeader, fileMode)
	if _, err := Open(dir, testPass, testOpts()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("foreign header: %v", err)
	}
	if err := func() error { _, err := Open(dir, testPass, testOpts()); return err }(); strings.Contains(err.Error(), "alice") {
		t.Fatal("error leaks a contact name")
	}
}

func TestPadLength(t *testing.T) {
	prev := 0
	for n := 0; n < 1<<21; n += 1 + n/64 {
		p := padLength(n)
		if p < n || p < minSealedPad || p < prev {
			t.Fatalf("padLength(%d) = %d", n, p)
		}
		if n > minSealedPad && float64(p) > 1.12*float64(n) {
			t.Fatalf("padLength(%d) = %d: more than 12%% overhead", n, p)
		}
		prev = p
	}
	if padLength(1000) != padLength(1001) {
		t.Fatal("nearby lengths should share a size")
	}
}
