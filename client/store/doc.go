// Package store is chorusd's encrypted durable state (DESIGN §5.7, §6): the
// user's message and link keys, contacts, the outbox with each fragment's
// ARQ state, the inbox, fragments of incomplete messages, and config
// values. Nothing in it is readable on disk without the passphrase, and
// every mutating call has reached the disk when it returns.
//
// # Using it
//
// At first start the daemon calls Create with the user's passphrase; after
// that, Open (ErrNoState tells the two apart, ErrWrongPassphrase a typo).
// Then, in the walk of a message (DESIGN §3):
//
//   - MessageKey and LinkKey give copies of the keys (wipe them with Zero);
//     Contacts gives the cards, whose keys Open in client/message tries.
//   - Sending: Enqueue the sealed fragments; RecordAttempt before each
//     packet leaves, with the SURB's decryption token (so an ACK that
//     arrives after a crash is recognised, and SURBToken lets it be
//     authenticated); Acknowledge when an ACK comes back on a SURB;
//     FailMessage when the ARQ gives up; PendingFragments and
//     SealedFragment to resume after a start. A fragment's tokens are
//     deleted when it is acknowledged and when its message is delivered,
//     failed or removed.
//   - Receiving: HoldFragment for each opened fragment before its mailbox
//     copy is acknowledged to the provider, SaveMessage when the
//     Reassembler completes a message (it also marks the message seen and
//     drops its held fragments), HeldFragments to refill the Reassembler
//     at start, DropHeld when the Reassembler evicts. Seen and SaveMessage's
//     ErrExists remove duplicates across restarts.
//
// # Files
//
// The data directory (mode 0700; Open and Create refuse one that group or
// others can reach, and files that are not 0600) holds two files:
//
//   - state.header: JSON with the Argon2id parameters, a 16-byte salt and
//     the sealed master key. It is written whole, atomically: a temporary
//     file, fsync, link (Create, never overwriting) or rename
//     (ChangePassphrase), fsync of the directory.
//   - state.db: a bbolt database whose bucket names, keys and values are
//     all opaque (below).
//
// # Keys
//
//	passphrase ──Argon2id(salt, t=3, m=64 MiB, p=2)──▶ KEK
//	KEK ──XChaCha20-Poly1305──▶ opens "chorus key check" || master key (random, 32 bytes)
//	master ──HKDF-SHA256──▶ value key (XChaCha20-Poly1305), name key (HMAC-SHA256)
//
// The sealed constant is the key check: a wrong passphrase fails the AEAD
// and Open returns ErrWrongPassphrase before touching the database. The
// header's parameters and salt are the AEAD's associated data, so editing
// them (say, to weaker parameters) also reads as a wrong passphrase. A
// random master key under the passphrase lets ChangePassphrase rewrite only
// the header. Argon2id with DefaultKDF took about 0.45 s per derivation on
// the 2-core reference machine (measured under load; BenchmarkArgon2idDefault):
// that is Open's start-up cost and each guess's cost to an attacker with the
// files. TestingKDF is a weak setting for tests only.
//
// # Why bbolt with sealed values
//
// The alternative was a sealed append-only log with snapshots. The ARQ
// updates the state for every packet and ACK, so mutations are small and
// frequent, and each must be durable on return. bbolt already gives
// atomic, fsync-committed transactions that survive a crash at any point
// (copy-on-write pages, two checksummed meta pages), point lookups, and a
// file that stays compact; a log would need its own framing, torn-write
// recovery, replay and compaction, all new code on the path of every
// mutation. bbolt with every record sealed separately costs one fdatasync'd
// transaction per call (well under a millisecond here) and never rewrites
// the whole state.
//
// Every logical table is a bucket named HMAC(name key, table name); every
// record key is HMAC(name key, table, logical key); every value is
// XChaCha20-Poly1305 with a random 24-byte nonce over its length, the value
// and zero padding to a Padmé length (at least 64 bytes), with the bucket
// and record key as associated data, so a value cannot be moved to another
// record or table unnoticed.
//
// # What the files reveal without the passphrase
//
// Not any key, name, card, message, config value or table name, in any
// encoding: a test writes distinctive strings through every API and
// searches every file for them raw, in hex and in base64. What does show:
// the number of records in each (unnamed) bucket, so roughly how many
// contacts, queued fragments and inbox messages there are; each value's
// size to within Padmé's ~12%; the file's size and modification times.
// bbolt's free pages may keep old values, still sealed. Someone who can
// write the files can delete records, or put back an older copy of the
// whole state, and that goes unnoticed: there is no anchor outside the
// files to detect a rollback. Any other change is ErrCorrupt.
//
// # Durability
//
// Every mutating method is one bbolt transaction, committed with
// fdatasync before it returns, so after a crash at any moment a call either
// happened entirely or not at all, and every call that returned is there.
// Create writes the database first and the header last, so a state exists
// only once it is complete (Create clears a half-made one). A test re-runs
// the test binary as a child that mutates the state and reports each
// returned call, kills it with SIGKILL at random points, and checks that
// every reported mutation survived.
//
// # Secrets in memory
//
// The master key, its subkeys and the identity keys live in fixed-size
// arrays that Close wipes; the passphrase stays the caller's (wipe it after
// Open). SURB tokens are wiped from the buffers that carry them through
// RecordAttempt, SURBToken and Acknowledge; the copy SURBToken returns is
// the caller's to wipe. Limits: x/crypto's AEAD keeps its own copy of the
// value key, and other decrypted records (contacts, messages) are ordinary
// slices left to the garbage collector.
package store
