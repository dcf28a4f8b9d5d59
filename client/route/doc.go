// Package route chooses the paths a client's packets take through the mix
// network, and the per-hop delays they ask for (DESIGN §3, §5.4). It is
// pure: the document and the randomness are passed in, nothing is sent.
//
// # Shape of a route
//
// Every route has the document's number of hops, len(Layers)+2:
//
//	first provider → one mix of layer 0 → … → one mix of the last layer → last provider
//
// and ends in a mailbox. The four kinds differ only in their ends:
//
//   - Forward: own provider → … → the recipient's provider, delivered to
//     the recipient's mailbox. The packet is built with sphinx.NewPacket.
//   - SURB: the recipient's provider → … → own provider, delivered to own
//     mailbox with a SURBReply ID: the route of a SURB-ACK (or any reply),
//     built with sphinx.NewSURB and sent by the recipient's provider with
//     sphinx.NewPacketFromSURB.
//   - Loop: own provider → … → own provider, own mailbox, with a SURBReply
//     ID. Build it like a SURB (sphinx.NewSURB) and send it with
//     sphinx.NewPacketFromSURB: then the delivered payload is still
//     encrypted, exactly as an ACK's is, and the client's provider cannot
//     tell its loops from its ACKs. (Built with NewPacket, a loop would
//     arrive with the forward payload's all-zero tag in the clear and
//     stand out.)
//   - Drop: own provider → … → a provider chosen uniformly, delivered to
//     DropRecipient, which every provider discards without storing or
//     answering.
//
// Every mix, and the drop destination, is chosen uniformly and
// independently from the current document. Uniform choice is what the
// anonymity analysis of a stratified network assumes: any bias (towards
// fast nodes, towards a "favourite" mix) shrinks the set of paths a packet
// could have taken and lets an adversary who runs the favoured nodes see
// more traffic.
//
// # Delays
//
// Every hop but the last holds the packet for a delay drawn from the
// exponential distribution with the document's mean MuMean (Loopix: the
// memoryless delay is what makes a mix's output order independent of its
// input order), rounded to the millisecond resolution of the NodeDelay
// command and clamped to MaxDelay, since nodes drop packets asking for
// more. The sender's own provider is hop 0 and holds the packet too. The
// last hop delivers at once. Route.Delay is the sum of the drawn delays:
// the lower bound of the packet's latency, from which client/arq computes
// its retransmission timeouts.
//
// # Randomness
//
// A Selector draws from a math/rand/v2 Source. New(nil) uses ChaCha8
// seeded from crypto/rand: paths and delays must be unpredictable to the
// adversary, or it could guess which of a node's outputs is which input.
// Tests pass a seeded source and get reproducible routes.
//
// Routes are metadata: never log them, their delays or their addresses.
package route
