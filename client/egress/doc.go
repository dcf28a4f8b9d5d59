// Package egress decides when a client writes to its provider link, and
// what: it is the one writer of that link (DESIGN §3 step 2, §5.4).
//
// # What an observer must not learn
//
// Anyone watching the wire between a client and its provider (and the
// provider itself) sees a sequence of fixed-size frames. Chorus promises
// that this sequence looks the same whether the user is sending a message,
// has a long queue, or has been idle for a week (DESIGN §1, promise 2).
// Encryption and fixed frame sizes hide what a frame carries; only the
// timing is left, and the timing is what this package controls.
//
// # Three Poisson clocks and a metronome
//
// Sender.Run keeps four independent schedules, all drawn from the current
// document's parameters and none from the user's activity:
//
//   - λP (mean LambdaPMean): each tick sends the next queued real packet
//     (Packets.NextReal) or, if there is none, a drop decoy. The tick
//     happens either way, so a busy client and an idle one send at the
//     same rate; the outbox only decides which of two equal-looking
//     packets goes out.
//   - λL (mean LambdaLMean): each tick sends a loop decoy that comes back
//     to the client's own mailbox, which also lets the client see that the
//     network carries its traffic.
//   - λD (mean LambdaDMean): each tick sends a drop decoy to a random
//     provider, which discards it.
//   - Retrieval (RetrievalInterval, constant): each tick sends one control
//     command from Control.NextControl: a RetrieveMessage poll, a
//     MessageAck, a GetConsensus. Polling at a fixed rate hides when
//     messages arrive; putting acks and consensus requests in the same
//     slots keeps them from adding frames that would reveal that a message
//     was just received.
//
// Poisson intervals are exponential and memoryless: what went out so far
// says nothing about when the next packet goes. Real packets only ever
// replace decoys in λP slots, never add slots, so sending a message
// changes no timing at all (with the same random source, an idle and a
// busy client send at exactly the same instants; the tests check this).
// When a new document changes a rate, the pending tick is redrawn with
// the new mean, which memorylessness makes exact.
//
// # Why one writer
//
// If anything else could write to the link (a retransmission, an ACK
// for the provider, a consensus fetch), its frames would appear on top
// of the Poisson stream, exactly when the user did something, and the
// observer could count them. Giving the link to one goroutine that writes
// only on its own clocks makes "nothing but the clocks decide when a
// frame goes out" true by construction; everything else queues for a
// slot. (The link's own keepalive NoOps fire only after a silence the
// clocks practically never leave.)
//
// # Decoys
//
// A decoy is a real Sphinx packet on a real route (client/route) with
// the same size as any other packet and built the same way; only its
// destination knows it is cover. This is what makes real and cover
// traffic indistinguishable at every mix, and it is why the packet
// builders are injected: this package never looks inside a packet.
//
// If a decoy cannot be built (say, no usable document yet) the slot
// passes without a frame: the error is logged once per failing streak,
// never with per-packet detail. The schedule itself is unaffected.
//
// Randomness for the clocks comes from a math/rand/v2 Source; nil means
// ChaCha8 seeded from crypto/rand. Timers are the runtime's, so tests run
// Sender under testing/synctest with a fake sink and a fixed seed.
package egress
