// Package hop decides what happens to one Sphinx packet at one node: it
// removes the node's layer with the right epoch key, refuses replays, and
// says whether to forward the packet (to which node, after what delay),
// deliver its payload (to which recipient) or drop it (for which reason).
//
// It is pure decision logic with no goroutines, sockets or clocks: the mix
// and the provider call Process from their worker pools and act on the
// Decision. Keys come from a KeySource (mix/rotation) and replay state from
// a ReplayFilter (mix/replay), both passed in.
//
// # Which key
//
// Around an epoch boundary a packet may have been made with the previous,
// current or next epoch's key (clients and nodes tolerate clock skew). A
// packet not made for a key fails that key's MAC check at the cost of one
// X25519 ladder and leaves the packet untouched, so Process tries the
// current epoch first, then the previous, then the next: each key at most
// once. A packet that fails all three is dropped as invalid; one opaque
// reason, whatever was wrong with it.
//
// # Replays
//
// The replay tag is checked against the filter of the key that opened the
// packet, after the MAC has verified (so garbage cannot fill the filter)
// and before the payload decryption and the blinding ladder (so a replay
// costs one ladder, like garbage).
// A filter that is full refuses the packet: a replay must never get through
// because memory ran out.
package hop
