// Package keys holds Chorus's typed key material: Ed25519 identity keys,
// X25519 link keys (the static keys of the Noise link layer) and X25519
// Sphinx keys (a mix's per-epoch packet keys).
//
// Every key is a fixed-size array in an unexported field, so it cannot be
// compared with == by accident, printed by fmt or serialised by a generic
// encoder. Public keys compare with Equal in constant time; private keys are
// wiped with Zero when they are no longer needed. String, LogValue and Format
// print only a short fingerprint of the public half ("link:3f2a1b9c"), so a
// key that slips into a log line or an error leaks nothing secret.
//
// The three kinds are distinct types: a link key cannot be passed where a
// Sphinx key is expected.
//
// Private keys live in files of their own (see LoadOrCreateIdentity and its
// siblings): PEM, mode 0600, in a directory of mode 0700. Each file stores the
// private key together with its public key, so a corrupted file is detected
// on load instead of silently producing a different identity.
package keys
