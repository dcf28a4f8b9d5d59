// Package provider is a Chorus provider: the edge of the mix network,
// where clients connect, and the first and last hop of every packet
// (DESIGN §2, §3, §5.5; the client side of the contract is
// docs/edge-protocol.md).
//
// # The provider's role
//
// A client never talks to a mix. It keeps one link to its provider and
// sends on it, at the constant Poisson rates of the document, fixed-size
// frames: Sphinx packets, real or decoy, and control commands that fetch
// its mail and the consensus. The provider is the only server that knows
// who the client is (its link key, its address); in exchange it learns
// nothing else: a client's packets are layered for the path the client
// chose, and what the provider stores for it is ciphertext it cannot
// read. What the provider must not do is lose mail, hand one client
// another's, or let one client (or a flood of strangers) starve the rest.
//
// # The walk at the edge
//
// Sending. Alice's chorusd writes SendPacket{packet} to her link. The
// provider takes it, within Alice's token bucket (1/λP + 1/λL + 1/λD
// packets per second from the document, a few seconds' burst), into its
// mix pipeline exactly as a mix takes a packet from a node link (package
// mix: a worker removes the provider's layer, checks the replay tag, the
// delay queue holds the packet for the delay Alice chose, the forwarder
// sends it to the layer-0 mix Alice chose). The provider is simply the
// first hop.
//
// Receiving. The packet crosses the layers and reaches Bob's provider,
// which is its last hop: the pipeline's Deliver hook gets a Recipient:
//
//   - the drop recipient (all zero): a decoy; discarded and counted;
//   - the echo recipient (sphinx.EchoRecipient): the echo service, used by
//     `chorus ping`; the same user payload goes back through the SURB the
//     packet carries, nothing is stored;
//   - a mailbox no registered key owns: dropped and counted (mailboxes
//     are never made for strangers);
//   - Bob's mailbox: the payload is encoded as a sphinx.Delivery and
//     stored (provider/spool, fsynced). Only after the store returned, and
//     only if the payload's flags say it carries a SURB, the provider makes
//     the SURB-ACK (sphinx.NewPacketFromSURB, an all-zero body) and sends
//     it back towards Alice. SURB replies (ACKs, loops, echo answers for
//     Bob) are stored the same way and never acknowledged.
//
// A mailbox that is full (MaxMessages or MaxBytes) refuses the packet: no
// store, no ACK, so Alice's chorusd sends it again later and reports
// failure after its bound. Since a refused packet was never acknowledged,
// count and size limits never cost an acknowledged message; only age
// (MaxAge, a week by default) evicts messages whose ACK went out, and
// that is counted (chorus_provider_spool_messages_evicted_total).
//
// Replies leave like any packet. Every SURB a client makes
// (client/route) starts at the provider that will use it, with a delay
// for that hop; the provider feeds the reply into its own pipeline, which
// unwraps it, holds it for that delay and forwards it. So an ACK leaves a
// random time after the store, among the provider's other traffic, and
// an observer cannot pair the packet that came in with the ACK that went
// out. (A SURB that starts at a mix of the first layer is handed to the
// forwarder for that mix at once, mix.Pipeline.Inject; one that starts
// anywhere else is dropped and counted.)
//
// Fetching. Bob's chorusd sends, at its constant retrieval rate, one
// control command per slot. RetrieveMessage gets exactly one Message
// frame: the oldest entry of Bob's mailbox with its sequence number, or
// an empty one, so the answer's size and timing say nothing about Bob's
// mail. When Bob holds the entry durably he sends MessageAck{seq} and the
// provider deletes it; until then every RetrieveMessage returns it again.
// The mailbox is always the one derived from the link's authenticated key
// (keys.LinkPublicKey.MailboxID), so no command can reach another's.
// GetConsensus{epoch} gets the signed document bytes in chunks, as the
// pipeline fetched them; the client checks the authorities' signatures
// itself and never trusts the provider.
//
// # Links
//
// One listener takes both kinds of link. After the handshake the peer's
// static key decides: a mix of the last layer that a held document allows
// to send here gets a node link, served by the pipeline; any other key is
// a client, authorized by provider/users (closed registration: only keys
// the operator added; open: a new key registers, within a per-address
// rate limit fed with the connection's source address). A refused peer is
// closed without a word. A client has at most one link: a new one
// replaces the old; at most MaxClients are open.
//
// Each client link is served by one goroutine, one command at a time, in
// order: a MessageAck is durable before the next command is read. Over
// its bucket, a SendPacket is dropped, a RetrieveMessage answered empty,
// a MessageAck or GetConsensus ignored; each is counted. A malformed frame
// closes the link (mix/link) and is counted. Deliveries go through a
// bounded queue to StoreWorkers goroutines, whose concurrent stores share
// fsyncs (the spool's group commit); when the queue is full the delivery
// is refused, and not acknowledged.
//
// # Lifecycle
//
// New opens the pipeline's keys and replay filters, the registry
// (DataDir/users.db) and the spool (DataDir/spool.db), and starts
// nothing. Run listens, runs the pipeline (with its document tracking,
// key rotation, descriptor upload as a provider, and λM loop cover
// traffic), accepts links and expires old messages; when its context
// ends it stops accepting, closes the links, lets queued deliveries be
// stored and acknowledged, drains the pipeline and returns once every
// goroutine has stopped. Close releases the files. Ready backs /readyz.
//
// # What is observable
//
// Metrics (chorus_provider_*, labels from fixed sets only): clients
// connected and refused, client disconnects by reason, client packets,
// rate-limited commands, deliveries by kind, refused deliveries by
// reason, replies sent and dropped, retrievals, acknowledgements,
// consensus requests, the store queue; the spool's (messages stored,
// delivered, evicted, bytes held, fsync seconds) and the registry's
// (registrations, refusals) under the same prefix; and the pipeline's
// chorus_mix_* and chorus_link_*.
//
// Nothing is logged about a client, its address, its mailbox or a packet
// above debug level; logs at info say that the provider serves and stops.
package provider
