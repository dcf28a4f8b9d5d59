package users

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// MailboxIDLength is the length of a mailbox ID, equal to the length of a
// Sphinx Recipient ID.
const MailboxIDLength = 32

// MailboxID returns the mailbox ID of the client with link key key (see
// keys.LinkPublicKey.MailboxID, which clients use too).
func MailboxID(key keys.LinkPublicKey) [MailboxIDLength]byte { return key.MailboxID() }

// Registration is the registration policy.
type Registration int

const (
	// RegistrationClosed authorizes only keys already in the registry. It
	// is the zero value.
	RegistrationClosed Registration = iota
	// RegistrationOpen registers unknown keys on their first connection,
	// within the configured limits.
	RegistrationOpen
)

func (r Registration) String() string {
	switch r {
	case RegistrationClosed:
		return "closed"
	case RegistrationOpen:
		return "open"
	}
	return fmt.Sprintf("Registration(%d)", int(r))
}

// MarshalText encodes r as "open" or "closed".
func (r Registration) MarshalText() ([]byte, error) {
	switch r {
	case RegistrationClosed, RegistrationOpen:
		return []byte(r.String()), nil
	}
	return nil, fmt.Errorf("marshal registration: unknown policy %d", int(r))
}

// UnmarshalText accepts "open" or "closed", as in the provider's TOML
// (registration = "open").
func (r *Registration) UnmarshalText(b []byte) error {
	switch string(b) {
	case "closed":
		*r = RegistrationClosed
	case "open":
		*r = RegistrationOpen
	default:
		return fmt.Errorf("registration %q: want \"open\" or \"closed\"", b)
	}
	return nil
}

// DefaultMaxTrackedAddresses is the size of the rate limiter's table of
// source addresses when Config.MaxTrackedAddresses is 0: a few hundred KiB.
const DefaultMaxTrackedAddresses = 8192

// Config configures a Registry. The zero Config is closed registration,
// which is what the operator's subcommand uses.
type Config struct {
	// Registration is the policy for unknown keys.
	Registration Registration
	// PerAddressLimit new keys may register from one source address (an
	// IPv4 address or an IPv6 /64) per Window. Both must be positive under
	// open registration.
	PerAddressLimit int
	Window          time.Duration
	// MaxUsers, if positive, caps the number of keys open registration
	// lets in. Keys the operator adds are not capped.
	MaxUsers int
	// MaxTrackedAddresses bounds the rate limiter's memory: the number of
	// source addresses it holds per window (two windows are kept). 0 means
	// DefaultMaxTrackedAddresses.
	MaxTrackedAddresses int

	// Clock tells the time; nil means time.Now.
	Clock func() time.Time
	// Registerer receives the chorus_provider_users_* metrics; nil means
	// they are not exported.
	Registerer prometheus.Registerer
	// Logger receives debug and warning logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.Registration != RegistrationClosed && c.Registration != RegistrationOpen {
		errs = append(errs, fmt.Errorf("registration: unknown policy %d", int(c.Registration)))
	}
	if c.Registration == RegistrationOpen {
		if c.PerAddressLimit <= 0 {
			errs = append(errs, fmt.Errorf("per-address limit: %d, want at least 1 under open registration", c.PerAddressLimit))
		}
		if c.Window <= 0 {
			errs = append(errs, fmt.Errorf("window: %v, want positive under open registration", c.Window))
		}
	}
	if c.PerAddressLimit < 0 {
		errs = append(errs, fmt.Errorf("per-address limit: %d is negative", c.PerAddressLimit))
	}
	if c.MaxUsers < 0 {
		errs = append(errs, fmt.Errorf("max users: %d is negative", c.MaxUsers))
	}
	if c.MaxTrackedAddresses < 0 {
		errs = append(errs, fmt.Errorf("max tracked addresses: %d is negative", c.MaxTrackedAddresses))
	}
	return errors.Join(errs...)
}

var (
	// ErrLocked is returned by Open when another process (normally the
	// running provider) holds the registry file.
	ErrLocked = errors.New("users: registry is in use by another process")
	// ErrUnknownKey is returned by Remove for a key not in the registry.
	ErrUnknownKey = errors.New("users: key not registered")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("users: registry closed")

	errZeroKey = errors.New("users: zero key")
)

var (
	bucketKeys      = []byte("keys")      // link key → record
	bucketMailboxes = []byte("mailboxes") // mailbox ID → link key
)

// lockTimeout is how long Open waits for another process to release the
// file. A variable so that tests can shorten it.
var lockTimeout = 2 * time.Second

// Registry is the provider's registry of client keys. It is safe for
// concurrent use.
type Registry struct {
	db      *bolt.DB
	cfg     Config
	clock   func() time.Time
	log     *slog.Logger
	metrics *metrics

	mu         sync.Mutex // serialises writes; guards the fields below
	limiter    *limiter
	count      int       // keys in the registry
	fullWarned time.Time // when the limiter's full table was last logged
	closed     bool
}

// Open opens the registry at path, creating it (mode 0600) if needed, and
// checks every stored record.
func Open(path string, cfg Config) (*Registry, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	if cfg.MaxTrackedAddresses == 0 {
		cfg.MaxTrackedAddresses = DefaultMaxTrackedAddresses
	}
	r := &Registry{cfg: cfg, clock: cfg.Clock, log: cfg.Logger}
	if r.clock == nil {
		r.clock = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Registration == RegistrationOpen {
		r.limiter = newLimiter(cfg.PerAddressLimit, cfg.Window, cfg.MaxTrackedAddresses)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open registry: %w", ErrLocked)
	} else if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	r.db = db
	// The metrics are registered last, so that a failed Open leaves
	// nothing registered.
	if err := r.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open registry: %w", err)
	}
	if r.metrics, err = newMetrics(cfg.Registerer); err != nil {
		db.Close()
		return nil, fmt.Errorf("open registry: register metrics: %w", err)
	}
	r.metrics.users.Set(float64(r.count))
	return r, nil
}

// load creates the buckets, checks every record and its index entry, and
// counts the keys.
func (r *Registry) load() error {
	return r.db.Update(func(tx *bolt.Tx) error {
		kb, err := tx.CreateBucketIfNotExists(bucketKeys)
		if err != nil {
			return err
		}
		mb, err := tx.CreateBucketIfNotExists(bucketMailboxes)
		if err != nil {
			return err
		}
		n := 0
		err = kb.ForEach(func(k, v []byte) error {
			key, err := keys.NewLinkPublicKey(k)
			if err != nil {
				return fmt.Errorf("stored key %d: %w", n, errRecord)
			}
			if _, err := parseRecord(v); err != nil {
				return fmt.Errorf("record of %v: %w", key, err)
			}
			id := MailboxID(key)
			if !bytes.Equal(mb.Get(id[:]), k) {
				return fmt.Errorf("mailbox index of %v: %w", key, errRecord)
			}
			n++
			return nil
		})
		if err != nil {
			return err
		}
		if m := mb.Stats().KeyN; m != n {
			return fmt.Errorf("mailbox index holds %d entries for %d keys: %w", m, n, errRecord)
		}
		r.count = n
		return nil
	})
}

// Close closes the registry. It is idempotent.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.db.Close()
}

// Authorize decides whether a client that proved key in the link handshake,
// connecting from remote, may use the provider, and returns its mailbox ID.
// A key in the registry is always authorized. An unknown key is registered
// under open registration if the limits allow (see the package
// documentation) and refused otherwise. Every refusal of an unknown key is
// counted by reason. remote may be the zero Addr if there is none.
func (r *Registry) Authorize(key keys.LinkPublicKey, remote netip.Addr) (mailbox [MailboxIDLength]byte, ok bool) {
	if key.IsZero() {
		return r.refuse(key, reasonInvalid, nil)
	}
	known, err := r.has(key)
	if err != nil {
		return r.refuse(key, reasonError, err)
	}
	if known {
		return MailboxID(key), true
	}
	if r.cfg.Registration != RegistrationOpen {
		return r.refuse(key, reasonClosed, nil)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.refuse(key, reasonError, ErrClosed)
	}
	// Another connection may have registered key meanwhile.
	if known, err := r.has(key); err != nil {
		return r.refuse(key, reasonError, err)
	} else if known {
		return MailboxID(key), true
	}
	if r.cfg.MaxUsers > 0 && r.count >= r.cfg.MaxUsers {
		return r.refuse(key, reasonFull, nil)
	}
	src, now := sourceOf(remote), r.clock()
	switch r.limiter.allow(src, now) {
	case overLimit:
		return r.refuse(key, reasonRateLimited, nil)
	case tableFull:
		if r.fullWarned.IsZero() || now.Sub(r.fullWarned) >= r.cfg.Window {
			r.fullWarned = now
			r.log.Warn("registration refused: too many source addresses this window; a registration flood?", "max_tracked_addresses", r.cfg.MaxTrackedAddresses)
		}
		return r.refuse(key, reasonTableFull, nil)
	}
	added, err := r.add(key, newRecord(originOpen, now))
	if err != nil {
		return r.refuse(key, reasonError, err)
	}
	if added {
		r.limiter.note(src, now)
		r.metrics.registrations.Inc()
		r.log.Debug("registered client", "key", key)
	}
	r.metrics.tracked.Set(float64(r.limiter.size()))
	return MailboxID(key), true
}

func (r *Registry) refuse(key keys.LinkPublicKey, reason string, err error) ([MailboxIDLength]byte, bool) {
	r.metrics.refused.WithLabelValues(reason).Inc()
	if err != nil {
		r.log.Warn("client registry failed", "key", key, "err", err)
	} else {
		r.log.Debug("refused client", "key", key, "reason", reason)
	}
	return [MailboxIDLength]byte{}, false
}

// has reports whether key is in the registry.
func (r *Registry) has(key keys.LinkPublicKey) (bool, error) {
	k := key.Array()
	var found bool
	err := r.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketKeys).Get(k[:]) != nil
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	return found, err
}

// add stores key with rec and its mailbox index entry unless key is already
// there, and updates the count. r.mu must be held.
func (r *Registry) add(key keys.LinkPublicKey, rec record) (added bool, err error) {
	k := key.Array()
	id := MailboxID(key)
	err = r.db.Update(func(tx *bolt.Tx) error {
		kb, mb := tx.Bucket(bucketKeys), tx.Bucket(bucketMailboxes)
		added = false
		if kb.Get(k[:]) != nil {
			return nil
		}
		if mb.Get(id[:]) != nil {
			// Two keys with one BLAKE2b-256 hash, or a damaged file.
			return fmt.Errorf("mailbox of %v: %w", key, errRecord)
		}
		if err := kb.Put(k[:], rec.marshal()); err != nil {
			return err
		}
		if err := mb.Put(id[:], k[:]); err != nil {
			return err
		}
		added = true
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	if err != nil {
		return false, err
	}
	if added {
		r.count++
		r.metrics.users.Set(float64(r.count))
	}
	return added, nil
}

// Add puts key in the registry as added by the operator. Adding a key that is
// already there changes nothing and is not an error. The change is durable
// when Add returns.
func (r *Registry) Add(key keys.LinkPublicKey) error {
	if key.IsZero() {
		return fmt.Errorf("add %v: %w", key, errZeroKey)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("add %v: %w", key, ErrClosed)
	}
	if _, err := r.add(key, newRecord(originOperator, r.clock())); err != nil {
		return fmt.Errorf("add %v: %w", key, err)
	}
	return nil
}

// Remove deletes key from the registry; it returns ErrUnknownKey if key is
// not there. The key's mailbox is not touched: its messages expire by the
// spool's retention. The change is durable when Remove returns.
func (r *Registry) Remove(key keys.LinkPublicKey) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("remove %v: %w", key, ErrClosed)
	}
	k := key.Array()
	id := MailboxID(key)
	err := r.db.Update(func(tx *bolt.Tx) error {
		kb, mb := tx.Bucket(bucketKeys), tx.Bucket(bucketMailboxes)
		if kb.Get(k[:]) == nil {
			return ErrUnknownKey
		}
		if err := kb.Delete(k[:]); err != nil {
			return err
		}
		return mb.Delete(id[:])
	})
	if err != nil {
		return fmt.Errorf("remove %v: %w", key, err)
	}
	r.count--
	r.metrics.users.Set(float64(r.count))
	return nil
}

// List returns every key in the registry, in byte order. It returns nil if
// the registry is closed.
func (r *Registry) List() []keys.LinkPublicKey {
	var out []keys.LinkPublicKey
	err := r.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, _ []byte) error {
			key, err := keys.NewLinkPublicKey(k) // copies
			if err != nil {
				return err
			}
			out = append(out, key)
			return nil
		})
	})
	if err != nil {
		r.log.Warn("list client keys", "err", err)
		return nil
	}
	return out
}

// Lookup returns the key that owns mailbox, if any. The provider uses it to
// drop packets for mailboxes nobody owns before they reach the spool.
func (r *Registry) Lookup(mailbox [MailboxIDLength]byte) (keys.LinkPublicKey, bool) {
	var key keys.LinkPublicKey
	var found bool
	err := r.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMailboxes).Get(mailbox[:])
		if v == nil {
			return nil
		}
		k, err := keys.NewLinkPublicKey(v) // copies
		if err != nil {
			return err
		}
		key, found = k, true
		return nil
	})
	if err != nil {
		if !errors.Is(err, berrors.ErrDatabaseNotOpen) {
			r.log.Warn("look up mailbox", "err", err)
		}
		return keys.LinkPublicKey{}, false
	}
	return key, found
}

// Len returns the number of keys in the registry.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}
