package store

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/chorus-mixnet/chorus/client/message"
	"github.com/chorus-mixnet/chorus/mix/keys"
)

// Errors. None carries a secret, a passphrase, a contact name or any other
// stored content.
var (
	// ErrWrongPassphrase: the passphrase does not unlock this state.
	ErrWrongPassphrase = errors.New("store: wrong passphrase")
	// ErrNoState: the directory holds no state; Create makes one.
	ErrNoState = errors.New("store: no state in this directory")
	// ErrExists: the state, contact, message or ID already exists.
	ErrExists = errors.New("store: already exists")
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("store: not found")
	// ErrCorrupt: a file or record fails its checks: damaged, or tampered
	// with by someone without the passphrase.
	ErrCorrupt = errors.New("store: state is corrupt or was tampered with")
	// ErrLocked: another process has the state open.
	ErrLocked = errors.New("store: state is in use by another process")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrPermissions: the directory or a file is accessible to group or
	// others.
	ErrPermissions = errors.New("store: unsafe permissions")
	// ErrKDFParams: Argon2id parameters out of bounds.
	ErrKDFParams = errors.New("store: invalid key derivation parameters")
	// ErrInvalid: an argument the store cannot keep (an empty passphrase,
	// a bad contact name, an empty outbox message).
	ErrInvalid = errors.New("store: invalid argument")
)

// Logical tables. On disk each is a bbolt bucket named by an HMAC of the
// table name, and each record key is an HMAC of the table and logical key.
const (
	tMeta      = "meta"      // check, identity, inbox sequence
	tConfig    = "config"    // name → value
	tContacts  = "contacts"  // name → contact
	tOutbox    = "outbox"    // message ID → outbox message
	tFragments = "fragments" // message ID || index → sealed fragment
	tARQ       = "arq"       // message ID || index → fragment ARQ state
	tSURBs     = "surbs"     // SURB ID → message ID || index || SURB token (until acknowledged)
	tInbox     = "inbox"     // sequence → inbox entry (no body)
	tBodies    = "bodies"    // sequence → message body
	tSeen      = "seen"      // sender key || message ID → time
	tHeld      = "held"      // sender key || message ID || index → fragment
	tHeldSets  = "heldsets"  // sender key || message ID → indices held
)

var tables = []string{tMeta, tConfig, tContacts, tOutbox, tFragments, tARQ, tSURBs, tInbox, tBodies, tSeen, tHeld, tHeldSets}

var (
	metaCheck    = []byte("check")
	metaIdentity = []byte("identity")
	metaInboxSeq = []byte("inbox sequence")
)

// Options configure Create and Open. The zero value is usable.
type Options struct {
	// KDF sets the Argon2id parameters for Create (and ChangePassphrase
	// when its own are zero); zero means DefaultKDF. Open reads them from
	// the header.
	KDF KDFParams
	// Rand supplies keys, salts and nonces; nil means crypto/rand.
	Rand io.Reader
	// Now supplies record times; nil means time.Now.
	Now func() time.Time
}

func (o *Options) fill() {
	if o.KDF == (KDFParams{}) {
		o.KDF = DefaultKDF
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is the client's encrypted durable state. Every mutating method
// has committed to disk (fsync) when it returns; each is one transaction,
// so a crash leaves either all of its effect or none. A Store is safe for
// concurrent use.
type Store struct {
	dir  string
	opts Options

	mu      sync.RWMutex // write-locked only by Close
	closed  bool
	db      *bolt.DB
	sealer  *sealer
	buckets map[string][]byte
	master  [masterKeySize]byte
	msgKey  [message.KeySize]byte
	linkKey [keys.ScalarSize]byte
}

// Create makes a new state in dir (created with mode 0700 if missing)
// under passphrase, with fresh message and link keys, and returns it open.
// It refuses a directory that already holds a state (ErrExists). The
// caller keeps (and should wipe) passphrase.
func Create(dir string, passphrase []byte, opts Options) (*Store, error) {
	opts.fill()
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("%w: empty passphrase", ErrInvalid)
	}
	if err := opts.KDF.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	if err := checkMode(dir, dirMode); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, headerName)); err == nil {
		return nil, ErrExists
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create state: %w", err)
	}
	// No header: any database here is from a Create that crashed before it
	// finished. Without its header it cannot be decrypted, and it was never
	// returned to a caller, so nothing accepted is lost.
	removeTemps(dir)
	if err := os.Remove(filepath.Join(dir, dbName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create state: %w", err)
	}

	s := &Store{dir: dir, opts: opts}
	var identity [message.KeySize + keys.ScalarSize]byte
	defer clear(identity[:])
	for _, b := range [][]byte{s.master[:], identity[:]} {
		if _, err := io.ReadFull(opts.Rand, b); err != nil {
			s.wipe()
			return nil, fmt.Errorf("create state keys: %w", err)
		}
	}
	h, err := newHeader(opts.Rand, passphrase, opts.KDF, &s.master)
	if err != nil {
		s.wipe()
		return nil, err
	}
	err = s.openDB(true)
	if err == nil {
		err = s.db.Update(func(tx *bolt.Tx) error {
			for _, b := range s.buckets {
				if _, err := tx.CreateBucket(b); err != nil {
					return err
				}
			}
			t := txn{s, tx}
			if err := t.put(tMeta, metaCheck, keyCheck); err != nil {
				return err
			}
			return t.put(tMeta, metaIdentity, identity[:])
		})
	}
	if err == nil {
		// The header goes last: its presence is what makes the state exist.
		err = writeHeader(dir, h, false)
	}
	if err != nil {
		if s.db != nil {
			s.db.Close()
			os.Remove(filepath.Join(dir, dbName))
		}
		s.wipe()
		return nil, fmt.Errorf("create state: %w", err)
	}
	copy(s.msgKey[:], identity[:message.KeySize])
	copy(s.linkKey[:], identity[message.KeySize:])
	return s, nil
}

// Open unlocks the state in dir with passphrase. A wrong passphrase is
// ErrWrongPassphrase; a directory without state is ErrNoState; a state
// another process holds open is ErrLocked. Open takes as long as one
// Argon2id derivation with the stored parameters. The caller keeps (and
// should wipe) passphrase.
func Open(dir string, passphrase []byte, opts Options) (*Store, error) {
	opts.fill()
	if err := checkMode(dir, dirMode); err != nil {
		return nil, err
	}
	h, err := readHeader(dir)
	if err != nil {
		return nil, err
	}
	if err := checkMode(filepath.Join(dir, dbName), fileMode); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, dbName)); err != nil {
		return nil, fmt.Errorf("open state database: %w", ErrCorrupt)
	}
	master, err := h.unlock(passphrase)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: opts, master: *master}
	clear(master[:])
	if err := s.openDB(false); err != nil {
		s.wipe()
		return nil, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, b := range s.buckets {
			if tx.Bucket(b) == nil {
				return ErrCorrupt
			}
		}
		t := txn{s, tx}
		check, err := t.get(tMeta, metaCheck)
		if err != nil || subtle.ConstantTimeCompare(check, keyCheck) != 1 {
			// The header unlocked, but the database is not under the same
			// key: the two files do not belong together.
			return ErrCorrupt
		}
		id, err := t.get(tMeta, metaIdentity)
		if err != nil || len(id) != message.KeySize+keys.ScalarSize {
			return ErrCorrupt
		}
		copy(s.msgKey[:], id[:message.KeySize])
		copy(s.linkKey[:], id[message.KeySize:])
		clear(id)
		return nil
	})
	if err != nil {
		s.db.Close()
		s.wipe()
		return nil, fmt.Errorf("open state: %w", err)
	}
	removeTemps(dir)
	return s, nil
}

func (s *Store) openDB(create bool) error {
	path := filepath.Join(s.dir, dbName)
	db, err := bolt.Open(path, fileMode, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return ErrLocked
	}
	if err != nil {
		if create {
			return fmt.Errorf("open state database: %w", err)
		}
		return fmt.Errorf("open state database: %w", ErrCorrupt)
	}
	sl, err := newSealer(&s.master, s.opts.Rand)
	if err != nil {
		db.Close()
		return err
	}
	s.db, s.sealer = db, sl
	s.buckets = make(map[string][]byte, len(tables))
	for _, t := range tables {
		s.buckets[t] = sl.bucketID(t)
	}
	return nil
}

func (s *Store) wipe() {
	clear(s.master[:])
	clear(s.msgKey[:])
	clear(s.linkKey[:])
	if s.sealer != nil {
		s.sealer.wipe()
	}
}

// Close closes the database and wipes the keys the Store holds. It is
// idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.db.Close()
	s.wipe()
	if err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	return nil
}

// ChangePassphrase re-seals the master key under a new passphrase, fresh
// salt and the given KDF parameters (zero means the Options' KDF), and
// atomically replaces the header. The records are not re-encrypted: they
// are under the master key, which does not change. Someone who copied the
// old header and knows the old passphrase can still read the state.
func (s *Store) ChangePassphrase(passphrase []byte, p KDFParams) error {
	if len(passphrase) == 0 {
		return fmt.Errorf("%w: empty passphrase", ErrInvalid)
	}
	if p == (KDFParams{}) {
		p = s.opts.KDF
	}
	if err := p.validate(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	h, err := newHeader(s.opts.Rand, passphrase, p, &s.master)
	if err != nil {
		return err
	}
	return writeHeader(s.dir, h, true)
}

// MessageKey returns a copy of the user's message key; the caller wipes it
// with Zero when done.
func (s *Store) MessageKey() (*message.PrivateKey, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	return message.NewPrivateKey(s.msgKey[:])
}

// LinkKey returns a copy of the client's link key; the caller wipes it with
// Zero when done.
func (s *Store) LinkKey() (*keys.LinkPrivateKey, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	return keys.NewLinkPrivateKey(s.linkKey[:])
}

// SetConfig stores a named configuration value.
func (s *Store) SetConfig(name string, value []byte) error {
	if name == "" {
		return fmt.Errorf("%w: empty config name", ErrInvalid)
	}
	return s.update(func(t txn) error { return t.put(tConfig, []byte(name), value) })
}

// Config returns a named configuration value, or ErrNotFound.
func (s *Store) Config(name string) ([]byte, error) {
	var v []byte
	err := s.view(func(t txn) (err error) {
		v, err = t.get(tConfig, []byte(name))
		return err
	})
	return v, err
}

// update runs fn in one read-write transaction, committed with fsync.
func (s *Store) update(fn func(t txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.Update(func(tx *bolt.Tx) error { return fn(txn{s, tx}) })
}

// view runs fn in one read-only transaction.
func (s *Store) view(fn func(t txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(func(tx *bolt.Tx) error { return fn(txn{s, tx}) })
}

// txn reads and writes logical records inside one bbolt transaction.
type txn struct {
	s  *Store
	tx *bolt.Tx
}

func (t txn) bucket(table string) (*bolt.Bucket, []byte, error) {
	id := t.s.buckets[table]
	b := t.tx.Bucket(id)
	if b == nil {
		return nil, nil, ErrCorrupt
	}
	return b, id, nil
}

// get returns the decrypted value of a logical key, ErrNotFound, or
// ErrCorrupt.
func (t txn) get(table string, key []byte) ([]byte, error) {
	b, bid, err := t.bucket(table)
	if err != nil {
		return nil, err
	}
	kid := t.s.sealer.keyID(table, key)
	v := b.Get(kid)
	if v == nil {
		return nil, ErrNotFound
	}
	return t.s.sealer.open(bid, kid, v)
}

func (t txn) has(table string, key []byte) (bool, error) {
	b, _, err := t.bucket(table)
	if err != nil {
		return false, err
	}
	return b.Get(t.s.sealer.keyID(table, key)) != nil, nil
}

func (t txn) put(table string, key, value []byte) error {
	b, bid, err := t.bucket(table)
	if err != nil {
		return err
	}
	kid := t.s.sealer.keyID(table, key)
	sealed, err := t.s.sealer.seal(bid, kid, value)
	if err != nil {
		return err
	}
	return b.Put(kid, sealed)
}

func (t txn) del(table string, key []byte) error {
	b, _, err := t.bucket(table)
	if err != nil {
		return err
	}
	return b.Delete(t.s.sealer.keyID(table, key))
}

// each calls fn with every decrypted value of a table, in the (random)
// order of their opaque keys.
func (t txn) each(table string, fn func(value []byte) error) error {
	b, bid, err := t.bucket(table)
	if err != nil {
		return err
	}
	return b.ForEach(func(kid, v []byte) error {
		pt, err := t.s.sealer.open(bid, bytes.Clone(kid), v)
		if err != nil {
			return err
		}
		return fn(pt)
	})
}
