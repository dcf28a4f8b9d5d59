// Package link is the authenticated, encrypted, fixed-frame connection that
// every Chorus connection uses: client to provider, provider to mix, mix to
// mix (DESIGN §5.2).
//
// # What it protects
//
// A link gives both ends the other's static X25519 link key, proven by the
// handshake, and carries commands between them with confidentiality and
// integrity. Its session keys come from ephemeral X25519 and ephemeral
// ML-KEM-768 together, so a recording of the traffic stays sealed unless
// both are broken later (forward secret and post-quantum). Every frame has
// the same length, so an observer of the wire cannot tell a Sphinx packet
// from a mailbox reply, a consensus chunk or a keepalive; idle links send
// keepalives, so silence looks like traffic too.
//
// It does not hide that two machines are linked, when the link was opened,
// or how many frames flow (that is what the Poisson traffic above it is
// for), and the handshake itself is recognisable. The listener learns the
// dialer's static key, and its address: both are metadata, and this
// package logs them only at debug level.
//
// # Handshake
//
// The dialer is the initiator of Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b
// (github.com/flynn/noise), with an ML-KEM-768 exchange in the payloads:
//
//	-> e, [ML-KEM-768 public key]                  1232 bytes
//	<- e, ee, s, es, [ML-KEM-768 ciphertext]        1184 bytes
//	   both set the PSK to the ML-KEM shared secret
//	-> s, se, psk                                     64 bytes
//	<- first frame: NoOp                        (confirmation)
//
// The PSK enters at the end of message 3, so the transport keys depend on
// the X25519 exchanges and on ML-KEM. The prologue names the protocol
// version ("chorus-link-v1") and the packet length, so peers that disagree on
// either fail at the first message. The messages have fixed sizes and need
// no framing.
//
// The dialer checks the responder's static key (message 2) against the key
// it meant to reach before revealing its own in message 3; the listener
// then asks Config.Authorize about the dialer's key. Either side refuses by
// closing the connection without a word. A listener that accepts sends a
// NoOp at once, so Dial returns only for a link that was accepted
// (ErrRefused otherwise). The ML-KEM secrets, the PSK and the handshake
// state we can reach are wiped when the handshake ends.
//
// # Frames
//
// After the handshake each direction is a stream of frames of
// FrameLength(packetLength) = 24 + packetLength bytes of plaintext, sealed
// with ChaCha20-Poly1305 (Noise's CipherState: the frame counter is the
// nonce, no length prefix, 16-byte tag, so packetLength+40 bytes on the
// wire; 3122 for the default geometry). Each direction rekeys with Noise's
// REKEY every 2^20 frames. A frame begins with a command byte and the
// command's fixed fields; the body holds a packet, payload or chunk of data
// and zero padding. Decoding is strict: an unknown command, a nonzero byte
// outside the command's fields, or a length that disagrees with the frame
// makes the frame malformed. A frame that fails authentication or decoding
// closes the link and is counted. The layout is in frame.go, and
// testdata/frames.golden has an example of every command.
//
// # Using it
//
//	ln, err := link.Listen(ctx, "tcp", addr, cfg) // cfg.Authorize required
//	c, err := ln.Accept(ctx)
//
//	c, err := link.Dial(ctx, "tcp", addr, cfg, peerLinkKey)
//	err = c.Send(ctx, link.SendPacket{Packet: pkt})
//	cmd, err := c.Recv(ctx) // a SendPacket, Message, ...; never NoOp
//	c.Close()
//
// Commands are the concrete types SendPacket, RetrieveMessage, Message,
// MessageAck, GetConsensus, Consensus, NoOp and Disconnect. Slices in a
// command returned by Recv alias the link's receive buffer and are valid
// until the next Recv: a mix can unwrap a packet in place without a copy.
// One goroutine may receive while others send. Close sends Disconnect,
// which the peer's Recv reports as io.EOF.
//
// A Listener runs every handshake in a goroutine of its own, at most
// Config.MaxHandshakes at once and each within Config.HandshakeTimeout, so
// peers that stall or send garbage delay no one else. Client and Server run
// the same handshakes over any net.Conn; package linktest uses them to give
// tests real links in memory.
//
// Metrics (NewMetrics) are named chorus_link_*, with bounded labels.
package link
