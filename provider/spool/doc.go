// Package spool keeps a provider's mailboxes (DESIGN §5.5): the messages
// delivered to its clients, held until each client has acknowledged them.
//
// A mailbox is named by a 32-byte ID, the Sphinx Recipient ID of the last
// hop (users.MailboxID of the owner's link key). Every call is scoped by that
// ID, and sequence numbers are per mailbox, so a client served with its own
// mailbox ID can neither see nor acknowledge anyone else's messages.
//
// # Use
//
// When the last hop of a packet names a mailbox that users.Registry.Lookup
// knows, the provider calls Put, and sends the packet's ACK only after Put
// returns nil. When the owner asks for a message (RetrieveMessage) the
// provider calls Peek and sends what it returns; when the client's
// MessageAck comes back it calls Ack with that sequence number. Expire runs
// periodically.
//
// # Guarantees
//
//   - Durable before acknowledged: Put returns only after the message is in
//     a committed bbolt transaction, fsynced (data pages, then the meta page).
//     A crash at any point (kill -9, power loss on honest hardware) loses no
//     message whose Put returned, and never loses an acknowledgement whose
//     Ack returned.
//   - In order, until acknowledged: Peek returns the oldest message not yet
//     acknowledged, the same one until it is, then the next. Sequence
//     numbers come from the mailbox's own bbolt bucket sequence, so they
//     only grow, across restarts and deletions; a retransmitted
//     acknowledgement can never hit a newer message. Ack of an unknown
//     sequence number does nothing.
//   - Errors, not damage: a full disk or an I/O error fails the commit with
//     an error and every Put in it returns that error (the packets are
//     refused, so their senders retransmit). bbolt is copy-on-write: a
//     commit writes new pages into free space, fsyncs them, and only then
//     writes and fsyncs the meta page that makes them current, so a commit
//     that fails (or a process that dies) midway leaves the previous tree
//     intact. Space runs out only while writing new pages (growing the file
//     or writing into it), before the meta page, which overwrites a block
//     that is already allocated. Each message also carries a CRC-32C; a
//     message that fails it is dropped and counted, never delivered.
//
// # Group commit
//
// An fsync costs milliseconds, so commits are shared: concurrent Put, Ack
// and Expire calls are applied in one transaction and one pair of fsyncs,
// and each returns only after that commit. There is no timer: the first
// caller commits at once, and those that arrive meanwhile form the next
// batch. chorus_provider_spool_batch_operations shows the batch sizes.
//
// # Retention
//
// Each mailbox is bounded by Config.MaxAge, MaxMessages and MaxBytes (payload
// bytes). When a Put takes a mailbox over a limit, its oldest messages are
// evicted until it is within all of them (first any older than MaxAge, then
// for count, then for bytes); Expire evicts messages older than MaxAge from
// every mailbox and trims mailboxes that are over a limit that was lowered.
// Evicting the oldest keeps a mailbox live for new mail when its owner has
// gone away, but an evicted message had already been acknowledged to its
// sender: it is lost, and counted in
// chorus_provider_spool_messages_evicted_total{reason="age"|"count"|"bytes"}.
// Limits should be generous enough that only abandoned or flooded mailboxes
// reach them. A payload larger than MaxBytes is refused with ErrTooLarge.
//
// A provider that acknowledges every stored message to its sender sets
// Config.RefuseWhenFull instead: then a Put that would take a mailbox over
// MaxMessages or MaxBytes stores nothing and returns ErrFull (after evicting
// what is older than MaxAge, which may make room), so the packet is refused,
// its sender gets no acknowledgement and retransmits, and no acknowledged
// message is ever evicted for room. Only MaxAge still evicts messages that
// were acknowledged to their senders; a mailbox over limits that were
// lowered refuses new messages until its owner has drained it.
//
// # Storage
//
// One bbolt file (mode 0600). Bucket "mailboxes" holds a bucket per mailbox
// ID whose keys are big-endian sequence numbers, so cursor order is delivery
// order; each value is a record: format version, time stored, CRC-32C,
// payload. Bucket "usage" holds each non-empty mailbox's message count and
// payload bytes, updated in the same transaction; Open rebuilds any that is
// missing or damaged. A mailbox's bucket is kept when it empties, since it
// holds the sequence.
//
// The spool stores for any mailbox ID it is given: checking that the
// mailbox has an owner is the caller's job, and without it a flood of
// packets to random IDs would create mailboxes without bound.
//
// Nothing is logged about individual messages or mailboxes; a failing commit
// is logged once, at error level, until commits succeed again.
package spool
