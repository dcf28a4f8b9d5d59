// Package users is a provider's registry of its clients (DESIGN §5.5): which
// client link keys may connect, and which mailbox each one owns.
//
// A client is known by its static X25519 link key, the key it proves in the
// link handshake. Its mailbox ID is MailboxID(key): BLAKE2b-256 over a
// domain-separation prefix and the key. That ID is the Sphinx Recipient ID
// senders put in the last hop of a packet, so the provider can file a
// delivered payload without any table, and the client's address on the
// network is (provider ID, MailboxID(key)). The function is part of the
// network protocol and never changes.
//
// # Entry points
//
// Open opens (or creates) the registry's bbolt file. After a link handshake
// the provider calls Authorize with the client's key and source address;
// Lookup maps the Recipient ID of a delivered packet back to the key, so a
// packet for a mailbox nobody owns can be dropped instead of stored. Add,
// Remove and List are for the operator's `chorus-provider` subcommand.
//
// # Registration
//
// Under RegistrationClosed (the zero value) only keys already in the registry
// are authorized: keys the operator added, and keys that registered while
// registration was open. Under RegistrationOpen an unknown key is registered
// on its first connection, unless
//
//   - its source address has used up its allowance: at most PerAddressLimit
//     new registrations per Window (a sliding-window estimate) from one IPv4
//     address or one IPv6 /64, since a single IPv6 host usually holds a whole
//     /64;
//   - the table of source addresses is full (MaxTrackedAddresses entries):
//     registration from addresses not yet in the table is refused until the
//     window rolls over, so a flood from many addresses costs bounded memory;
//   - the registry holds MaxUsers keys.
//
// Every registration and every refusal (by a reason from a fixed set) is
// counted in chorus_provider_users_* metrics. The rate limiter lives in
// memory and starts empty after a restart.
//
// # Storage
//
// The registry is one bbolt file (mode 0600) with two buckets: link key →
// record (format version, how the key was registered, when) and mailbox ID →
// link key. Both change in the same fsynced transaction, so they always
// agree; Open checks every record. Nothing is cached in memory, so the file is
// the whole truth. bbolt locks the file: only one process can have it open,
// so the operator's subcommand must run while the provider is stopped (Open
// fails with ErrLocked after a short wait otherwise); the provider sees the
// change when it starts.
//
// # What is logged
//
// Keys appear in logs only as fingerprints (keys.LinkPublicKey.String);
// registrations and refusals are logged at debug level only and never with
// the client's address.
package users
