// Package rotation gives a mix one Sphinx key per epoch: created ahead of
// time so it can be published, used while packets for its epoch can
// arrive, then erased, from memory and from disk, so that traffic recorded
// today cannot be unwrapped with a key seized tomorrow (forward secrecy,
// DESIGN §1).
//
// # The life of the key of epoch E
//
//	start of E-3   created and saved to Dir (or at first start, if later)
//	during E-3     published: the descriptor uploaded then is for E-2 and
//	               carries the keys of E-2, E-1 and E
//	E-1            Key(E) works: senders whose clocks run ahead use it
//	E              the current key
//	E+1, until     Key(E) still works for packets made for E and still in
//	  Grace        flight (delays of earlier hops, clock skew)
//	Grace ends     retired: withdrawn from Key, its file erased
//	               (keys.Erase: overwritten, synced, removed), OnRetire(E)
//	               called so the replay filter goes with it, and the
//	               private key zeroed in memory one second later, once any
//	               worker that fetched it just before has finished
//
// So during epoch E keys exist for E to E+Ahead (Ahead = 3): the descriptor
// a node uploads during E is for E+1 and must carry E+1 to E+3, which is
// one more than "the current and next two" epochs. PublicKeys(E) and
// PublicKeys(E+1) both work during E and return exactly what
// pki.Descriptor.SphinxKeys needs.
//
// # Using it
//
// New loads the keys already in Dir, erases those no longer needed and
// creates the missing ones, so a restarted node has its keys (the ones its
// published descriptors name) at once. Run wakes at each epoch boundary and
// at the end of each grace period to do the same. Hop workers call Key for
// every packet: it is one atomic load of an immutable snapshot and an
// index, without locks or allocation. Close zeroes every key in memory;
// call it after the workers have stopped.
//
// # Failures
//
// A key file that exists but cannot be loaded (corrupted, unsafe
// permissions) makes New fail, and is never replaced: its public key may
// already be in a signed descriptor, and the operator should look. In Run
// a failure (disk full, a bad file) is logged, counted in
// chorus_mix_rotation_errors_total{op} and retried after a twentieth of an
// epoch (100 ms to 30 s), while the keys already held keep working.
// Temporary files a crash left behind while writing a key are erased.
//
// The clock (Config.Now) must be the one the Schedule reads; the tests
// drive both with testing/synctest.
package rotation
