package spool

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// MailboxIDLength is the length of a mailbox ID (a Sphinx Recipient ID; see
// users.MailboxID).
const MailboxIDLength = 32

// MaxPayloadLength is the largest payload Put accepts, well above any Sphinx
// payload.
const MaxPayloadLength = 4 << 20

// Config configures a Spool. A zero limit means no limit of that kind.
type Config struct {
	// MaxAge is how long a message may wait for its client. Older messages
	// are evicted by Expire and by any Put to their mailbox.
	MaxAge time.Duration
	// MaxMessages and MaxBytes bound each mailbox: the number of messages
	// and the sum of their payload lengths. A Put that exceeds either
	// evicts the mailbox's oldest messages until both hold again.
	MaxMessages int
	MaxBytes    int64
	// RefuseWhenFull makes Put refuse, with ErrFull, a message that would
	// take its mailbox over MaxMessages or MaxBytes, instead of evicting
	// the mailbox's oldest messages: a provider that acknowledges what it
	// stores sets it, so that no acknowledged message is ever evicted for
	// room. Only MaxAge (and damage) then removes unacknowledged messages.
	RefuseWhenFull bool

	// Clock tells the time; nil means time.Now. It stamps stored messages
	// and decides their age.
	Clock func() time.Time
	// Registerer receives the chorus_provider_spool_* metrics; nil means
	// they are not exported.
	Registerer prometheus.Registerer
	// Logger receives error logs (never with mailbox IDs); nil discards
	// them.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max age: %v is negative", c.MaxAge))
	}
	if c.MaxMessages < 0 {
		errs = append(errs, fmt.Errorf("max messages: %d is negative", c.MaxMessages))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max bytes: %d is negative", c.MaxBytes))
	}
	return errors.Join(errs...)
}

var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrTooLarge is returned by Put for a payload longer than
	// MaxPayloadLength or than the per-mailbox MaxBytes.
	ErrTooLarge = errors.New("spool: payload too large")
	// ErrLocked is returned by Open when another process holds the file.
	ErrLocked = errors.New("spool: database is in use by another process")
	// ErrFull is returned by Put, under Config.RefuseWhenFull, for a
	// message its mailbox has no room for.
	ErrFull = errors.New("spool: mailbox full")
)

var (
	bucketMailboxes = []byte("mailboxes") // mailbox ID → bucket: sequence → record
	bucketUsage     = []byte("usage")     // mailbox ID → usage, for non-empty mailboxes
)

// lockTimeout is how long Open waits for another process to release the
// file. A variable so that tests can shorten it.
var lockTimeout = 2 * time.Second

// maxBatch bounds the operations in one commit.
const maxBatch = 512

// expireChunk bounds the mailboxes one Expire commit trims.
const expireChunk = 256

// Stats is a snapshot of what the spool holds.
type Stats struct {
	Mailboxes int   // mailboxes holding at least one message
	Messages  int64 // messages in all mailboxes
	Bytes     int64 // payload bytes in all mailboxes
}

// Spool is the provider's mailbox store. It is safe for concurrent use.
type Spool struct {
	db      *bolt.DB
	cfg     Config
	clock   func() time.Time
	log     *slog.Logger
	metrics *metrics
	failing atomic.Bool // the last commit failed; logged once per streak

	// beforeCommit, if set (by tests), runs before each commit.
	beforeCommit func(batch int)

	mu     sync.Mutex
	idle   sync.Cond // signalled when busy becomes false
	queue  []*op     // operations waiting for the next commit
	busy   bool      // a leader is committing or about to
	closed bool
	totals Stats
}

// Open opens the spool at path, creating it (mode 0600) if needed.
func Open(path string, cfg Config) (*Spool, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &Spool{cfg: cfg, clock: cfg.Clock, log: cfg.Logger}
	s.idle.L = &s.mu
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open spool: %w", ErrLocked)
	} else if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s.db = db
	// The metrics are registered last, so that a failed Open leaves
	// nothing registered.
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if s.metrics, err = newMetrics(cfg.Registerer); err != nil {
		db.Close()
		return nil, fmt.Errorf("open spool: register metrics: %w", err)
	}
	s.metrics.messages.Set(float64(s.totals.Messages))
	s.metrics.bytes.Set(float64(s.totals.Bytes))
	return s, nil
}

// load creates the buckets and sums the usage records, rebuilding any that
// is missing or damaged.
func (s *Spool) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketMailboxes)
		if err != nil {
			return err
		}
		ub, err := tx.CreateBucketIfNotExists(bucketUsage)
		if err != nil {
			return err
		}
		var ids [][]byte
		err = root.ForEachBucket(func(id []byte) error {
			ids = append(ids, bytes.Clone(id))
			return nil
		})
		if err != nil {
			return err
		}
		var d delta
		var t Stats
		for _, id := range ids {
			x, err := openBox(tx, id, false, &d)
			if err != nil {
				return err
			}
			if x.rebuilt {
				if err := x.save(); err != nil {
					return err
				}
			}
			if x.u.messages > 0 {
				t.Mailboxes++
				t.Messages += x.u.messages
				t.Bytes += x.u.bytes
			}
		}
		// Usage records of mailboxes that do not exist.
		var stale [][]byte
		_ = ub.ForEach(func(id, _ []byte) error {
			if root.Bucket(id) == nil {
				stale = append(stale, bytes.Clone(id))
			}
			return nil
		})
		for _, id := range stale {
			if err := ub.Delete(id); err != nil {
				return err
			}
		}
		s.totals = t
		return nil
	})
}

// Close waits for the operations already submitted to be committed and
// closes the database. It is idempotent.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for s.busy {
		s.idle.Wait()
	}
	s.mu.Unlock()
	return s.db.Close()
}

// Stats returns what the spool holds now.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.totals
}

// Put stores a copy of payload at the end of mailbox. It returns only when
// the message is on disk (fsynced): the provider may then send the packet's
// ACK. Concurrent calls share one commit (group commit). Any error means the
// message was not stored and the packet must be refused.
//
// Storing may evict the mailbox's oldest messages: those older than MaxAge,
// then as many as needed to bring the mailbox within MaxMessages and
// MaxBytes; under RefuseWhenFull it evicts only those older than MaxAge and
// returns ErrFull, storing nothing, if the message still does not fit. The
// spool stores for any mailbox ID; the caller checks that
// someone owns the mailbox (users.Registry.Lookup) before calling Put.
func (s *Spool) Put(mailbox [MailboxIDLength]byte, payload []byte) error {
	if len(payload) > MaxPayloadLength || (s.cfg.MaxBytes > 0 && int64(len(payload)) > s.cfg.MaxBytes) {
		return fmt.Errorf("store message: %w", ErrTooLarge)
	}
	o := &op{kind: opPut, mailbox: mailbox, record: encodeRecord(s.clock().UnixNano(), payload)}
	if err := s.submit(o); err != nil {
		return fmt.Errorf("store message: %w", err)
	}
	return nil
}

// Peek returns the oldest message in mailbox that the client has not yet
// acknowledged: its sequence number (to pass to Ack), a copy of its payload,
// and how many more messages wait behind it. It changes nothing: until the
// message is acknowledged every Peek returns it again. ok is false if the
// mailbox is empty.
func (s *Spool) Peek(mailbox [MailboxIDLength]byte) (seq uint64, payload []byte, remaining int, ok bool, err error) {
	for {
		var damaged []byte
		err = s.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketMailboxes).Bucket(mailbox[:])
			if b == nil {
				return nil
			}
			k, v := b.Cursor().First()
			if k == nil {
				return nil
			}
			sq, good := parseSeqKey(k)
			_, p, derr := decodeRecord(v)
			if !good || derr != nil {
				damaged = bytes.Clone(k)
				return nil
			}
			u, _ := decodeUsage(tx.Bucket(bucketUsage).Get(mailbox[:]))
			seq, payload, remaining, ok = sq, bytes.Clone(p), int(max(u.messages-1, 0)), true
			return nil
		})
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			err = ErrClosed
		}
		if err != nil {
			return 0, nil, 0, false, fmt.Errorf("retrieve message: %w", err)
		}
		if damaged == nil {
			return seq, payload, remaining, ok, nil
		}
		// Drop the damaged message and look again.
		if err := s.submit(&op{kind: opDrop, mailbox: mailbox, key: damaged}); err != nil {
			return 0, nil, 0, false, fmt.Errorf("retrieve message: %w", err)
		}
	}
}

// Ack deletes message seq from mailbox: the client has it. Any sequence
// number in the mailbox may be acknowledged, not only the oldest; an
// unknown one (already acknowledged, evicted, or never there) is ignored,
// so a retransmitted acknowledgement is harmless. The deletion is on disk
// when Ack returns.
func (s *Spool) Ack(mailbox [MailboxIDLength]byte, seq uint64) error {
	if err := s.submit(&op{kind: opAck, mailbox: mailbox, seq: seq}); err != nil {
		return fmt.Errorf("acknowledge message: %w", err)
	}
	return nil
}

// Expire enforces the retention limits on every mailbox: it evicts messages
// older than MaxAge, and, unless RefuseWhenFull is set, trims any mailbox
// over MaxMessages or MaxBytes (after the limits were lowered). The
// provider calls it periodically; Put enforces the limits only on the
// mailbox it writes.
func (s *Spool) Expire() error {
	if s.cfg.MaxAge == 0 && s.cfg.MaxMessages == 0 && s.cfg.MaxBytes == 0 {
		return nil
	}
	cutoff := s.cutoff(s.clock())
	var due [][MailboxIDLength]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketMailboxes)
		return tx.Bucket(bucketUsage).ForEach(func(id, v []byte) error {
			if len(id) != MailboxIDLength {
				return nil
			}
			u, err := decodeUsage(v)
			over := err != nil || (!s.cfg.RefuseWhenFull &&
				((s.cfg.MaxMessages > 0 && u.messages > int64(s.cfg.MaxMessages)) ||
					(s.cfg.MaxBytes > 0 && u.bytes > s.cfg.MaxBytes)))
			if !over && s.cfg.MaxAge > 0 {
				if b := root.Bucket(id); b != nil {
					if _, v := b.Cursor().First(); v != nil {
						stored, _, err := decodeRecord(v)
						over = err != nil || stored <= cutoff
					}
				}
			}
			if over {
				due = append(due, [MailboxIDLength]byte(id))
			}
			return nil
		})
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	if err != nil {
		return fmt.Errorf("expire messages: %w", err)
	}
	for len(due) > 0 {
		n := min(len(due), expireChunk)
		if err := s.submit(&op{kind: opExpire, mailboxes: due[:n]}); err != nil {
			return fmt.Errorf("expire messages: %w", err)
		}
		due = due[n:]
	}
	return nil
}

// cutoff is the storage time (Unix nanoseconds) at or before which a message
// is too old at now; with no MaxAge nothing is.
func (s *Spool) cutoff(now time.Time) int64 {
	if s.cfg.MaxAge == 0 {
		return -1 << 63
	}
	return now.Add(-s.cfg.MaxAge).UnixNano()
}
