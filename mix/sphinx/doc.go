// Package sphinx implements the Sphinx packet format that every Chorus
// packet travels in, parameterised exactly as Katzenpost's X25519 Sphinx
// (it reproduces Katzenpost's published vectors byte for byte).
//
// # What a Sphinx packet is
//
// A sender who knows the public keys of the nodes on a path wraps a message
// in one layer per hop. Each node can remove only its own layer: it learns
// the next hop (or that the packet ends with it), how long to hold the
// packet, and nothing else: not the sender, not the rest of the path, not
// its own position on it. After each hop the packet is re-randomised, so
// an observer cannot link the packet a node receives to the one it sends;
// every packet has the same length however many hops remain. A sender can
// also make a single-use reply block (SURB) that lets someone answer
// without learning where the sender is; replies look like any other packet.
//
// # Layout
//
// Lengths for the default geometry (5 hops, 2000-byte user payload plus room
// for a SURB); see Geometry for the formulas.
//
//	header (476):
//	  AD     2    always 00 00, authenticated, the same at every hop
//	  alpha  32   X25519 group element, blinded at every hop
//	  beta   410  routing information: 5 × 82 bytes of encrypted commands
//	  gamma  32   HMAC-SHA256 over AD | alpha | beta
//	payload (2606), AEZ-encrypted once per hop:
//	  tag    32   all zero when the last layer is removed
//	  body   2574 2 flag bytes | SURB (572) | user payload (2000)
//
// Each hop computes a shared secret X25519(own key, alpha), derives its
// keys with HKDF-SHA256, checks gamma, decrypts its 82 bytes of routing
// commands from beta (AES-256-CTR), decrypts one payload layer (AEZ), and
// either forwards the packet with a blinded alpha, the shifted beta and the
// next hop's MAC, or delivers the payload.
//
// # Entry points
//
//   - NewGeometry, DefaultGeometry: the packet shape, a network parameter.
//   - NewPacket: a forward packet along a []PathHop (node ID, Sphinx public
//     key, routing commands: NodeDelay on inner hops, Recipient and
//     optionally SURBReply on the last).
//   - NewSURB, NewPacketFromSURB, DecryptSURBPayload: make a reply block
//     and its decryption token, reply with it, read the reply.
//   - Unwrap, UnwrapInto: one hop's processing. The Result says whether to
//     Forward (to NextHop after Delay; pkt now holds the next packet) or
//     Deliver (Payload to Recipient, marked if it is a SURB reply), and
//     carries the ReplayTag the hop must check. UnwrapInto reuses a Result
//     and allocates nothing proportional to the packet; UnwrapChecked also
//     does the replay check right after the MAC, so a replay costs one
//     ladder.
//
// Everything is pure: no I/O, no goroutines, no global state. Randomness
// comes from the caller's io.Reader, so tests are deterministic.
//
// # Security properties
//
// Unwrap returns the single opaque error ErrInvalidPacket for every kind of
// bad packet (wrong length, unknown AD, bad MAC, bad commands, bad payload
// tag), so a node's behaviour is no oracle for what was wrong. It never
// panics on packet input.
//
// The header MAC is checked, in constant time, right after the one X25519
// ladder the shared secret needs and before any other public-key work: a
// packet that is not for this key (or was tampered with) costs one ladder
// and leaves pkt unchanged, so a node can try the previous epoch's key
// next. Only a packet that is forwarded costs the second ladder, for
// blinding. The replay tag is computed only for packets whose MAC verified.
//
// Payload tampering cannot be seen by inner hops (that is what keeps
// replies indistinguishable from forward packets); AEZ is a wide-block
// cipher, so any change garbles the whole payload and the last hop, or the
// SURB's creator, rejects it by the zero tag.
//
// Per-packet secrets (shared secrets, KDF output, blinding scalars, the
// sender's ephemeral key) are wiped after use, and no error carries secret
// or per-packet data.
//
// Packet creation does not re-blind each hop's shared secret from scratch
// (Katzenpost: i+1 ladders for hop i); it multiplies the blinding factors
// modulo the group order and computes each hop's alpha and shared secret
// with one ladder each, producing byte-identical packets (see scalar.go for
// the argument and the negligible-probability fallback).
package sphinx
