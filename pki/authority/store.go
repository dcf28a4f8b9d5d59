package authority

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// kind names one bbolt bucket. Every record is keyed by epoch (8 bytes, big
// endian, so keys sort by epoch) followed by a 32-byte subject: a node ID
// for descriptors, an authority's identity key for votes, reveals and
// signatures, zeroes for records of which there is one per epoch.
type kind string

const (
	kindDescriptor kind = "descriptor" // signed descriptors uploaded by nodes
	kindVote       kind = "vote"       // signed votes, own and peers'
	kindReveal     kind = "reveal"     // signed reveals, own and peers'
	kindSignature  kind = "signature"  // signatures over the computed document, own and peers'
	kindDocument   kind = "document"   // the document body this authority computed
	kindPublished  kind = "published"  // the published signed document
	kindSecret     kind = "secret"     // own commit–reveal random value
	kindFailed     kind = "failed"     // a marker: consensus for this epoch failed
)

var allKinds = []kind{kindDescriptor, kindVote, kindReveal, kindSignature, kindDocument, kindPublished, kindSecret, kindFailed}

const subjectSize = 32

type subject = [subjectSize]byte

// store is the authority's durable state in one bbolt file. Every write is
// committed with fsync before the caller acts on it (answers an upload,
// serves a vote), so a restart resumes exactly where the process stopped.
type store struct{ db *bolt.DB }

func openStore(path string) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, k := range allKinds {
			if _, err := tx.CreateBucketIfNotExists([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func recordKey(epoch uint64, sub subject) []byte {
	k := make([]byte, 8+subjectSize)
	binary.BigEndian.PutUint64(k, epoch)
	copy(k[8:], sub[:])
	return k
}

func epochPrefix(epoch uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, epoch)
}

// put stores val, replacing any earlier value.
func (s *store) put(k kind, epoch uint64, sub subject, val []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(k)).Put(recordKey(epoch, sub), val)
	})
	if err != nil {
		return fmt.Errorf("store %s: %w", k, err)
	}
	return nil
}

// putOnce stores val unless a value is already there, and returns the value
// that is stored afterwards. Own votes, reveals, secrets and signatures are
// written this way: once made public they never change, even across a crash
// and restart.
func (s *store) putOnce(k kind, epoch uint64, sub subject, val []byte) ([]byte, error) {
	var out []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(k))
		key := recordKey(epoch, sub)
		if old := b.Get(key); old != nil {
			out = bytes.Clone(old)
			return nil
		}
		out = val
		return b.Put(key, val)
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", k, err)
	}
	return out, nil
}

// get returns a copy of the stored value, or nil.
func (s *store) get(k kind, epoch uint64, sub subject) []byte {
	var out []byte
	_ = s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket([]byte(k)).Get(recordKey(epoch, sub)))
		return nil
	})
	return out
}

// list returns copies of every value stored for epoch, by subject.
func (s *store) list(k kind, epoch uint64) map[subject][]byte {
	out := make(map[subject][]byte)
	prefix := epochPrefix(epoch)
	_ = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(k)).Cursor()
		for key, v := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, v = c.Next() {
			var sub subject
			copy(sub[:], key[8:])
			out[sub] = bytes.Clone(v)
		}
		return nil
	})
	return out
}

// count returns how many values are stored for epoch.
func (s *store) count(k kind, epoch uint64) int {
	n := 0
	prefix := epochPrefix(epoch)
	_ = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(k)).Cursor()
		for key, _ := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, _ = c.Next() {
			n++
		}
		return nil
	})
	return n
}

// prune deletes every record of an epoch before keepFrom. (Secrets need no
// wiping: each is published in its reveal.)
func (s *store) prune(keepFrom uint64) error {
	limit := epochPrefix(keepFrom)
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, k := range allKinds {
			b := tx.Bucket([]byte(k))
			var old [][]byte
			c := b.Cursor()
			for key, _ := c.First(); key != nil && bytes.Compare(key[:8], limit) < 0; key, _ = c.Next() {
				old = append(old, bytes.Clone(key))
			}
			for _, key := range old {
				if err := b.Delete(key); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("prune store: %w", err)
	}
	return nil
}

// latest returns the highest epoch with a record of kind k.
func (s *store) latest(k kind) (uint64, bool) {
	var e uint64
	var ok bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		key, _ := tx.Bucket([]byte(k)).Cursor().Last()
		if len(key) >= 8 {
			e, ok = binary.BigEndian.Uint64(key), true
		}
		return nil
	})
	return e, ok
}
