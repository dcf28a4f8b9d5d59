// Package client is the core of chorusd, the client daemon (DESIGN §2,
// §3): it composes route, egress, arq, message and store into one
// Client that keeps a link to the user's provider and implements the
// local API's Backend (client/api). cmd/chorusd reads the config, opens
// the store and serves the API; everything between the API and the link
// is here.
//
//	c, err := client.New(cfg, client.Deps{Store: st, Log: log, Registerer: reg})
//	defer c.Close()                      // after Run: wipes the keys
//	go (&api.Server{Backend: c}).Serve(ctx, ln)
//	err = c.Run(ctx)                     // until ctx ends
//
// # The walk of a message, from the client's side
//
// Sending (Client.Send, DESIGN §3 steps 1, 2 and 6):
//
//  1. The body is split into fragments that fit the geometry's user
//     payload, and each is sealed with HPKE to the contact's message key
//     (client/message). The message, its recipient's card and every sealed
//     fragment go into the durable outbox (store.Enqueue) in one
//     transaction; only then does Send return the message ID. From here on
//     a crash loses nothing: at the next start the outbox and each
//     fragment's attempts are read back (restoreOutbox).
//  2. The fragments wait in the send queue. The egress (client/egress)
//     ticks on its λP Poisson clock; each tick takes the next real packet,
//     or sends a drop decoy if there is none, so a queue never changes
//     when packets leave. A builder keeps the next packet of each kind
//     ready ahead of its slot, so that a real packet leaves as promptly
//     after its tick as a decoy does (prepare.go). A fragment's packet is
//     built on the current document: a fresh forward route own provider →
//     mixes → the recipient's provider (client/route), a fresh SURB for
//     the way back to our own mailbox with a random SURB ID, and the
//     forward payload flags | 0 | SURB | sealed fragment
//     (docs/edge-protocol.md §4). The attempt is recorded in the ARQ
//     tracker and durably in the store (with its SURB ID, the deadline
//     the tracker set and the SURB's decryption token, sealed) before the
//     packet can reach the link; the token is kept in memory too.
//  3. The recipient's provider stores the fragment and answers through the
//     SURB: the ACK arrives in our own mailbox as a SURB reply. If none
//     comes by the deadline (the drawn delays both ways plus a slack that
//     doubles each time), the ARQ lists the fragment again and it goes
//     back in the queue, to leave on a new route with a new SURB; after
//     the last attempt the message is marked failed, never dropped
//     silently.
//
// Receiving (DESIGN §3 step 5): the egress's retrieval clock fills a
// control slot at a constant rate with a RetrieveMessage, a MessageAck or
// a GetConsensus. Each retrieval answers with one fixed-size Message: an
// empty one, or the head of our mailbox, an encoded sphinx.Delivery.
//
//   - A SURB reply is looked up by its SURB ID: the ACK of one of our
//     fragments (then store.Acknowledge, durably, and the tracker), one of
//     our loop decoys (a health metric), or the echo of a ping. Each is
//     decrypted with its token first: only a packet that travelled through
//     our SURB decrypts, so not even our own provider can forge an ACK.
//     After a restart the token of an earlier attempt comes from the
//     store (store.SURBToken); a reply whose token is unknown, or that
//     does not decrypt, is refused. Tokens are wiped, in memory and in
//     the store, once the fragment is acknowledged or its message fails.
//   - A forward message carries a sealed fragment. It is opened by trying
//     the contacts' keys, most recent sender first; a stranger's is
//     dropped. The fragment is held durably (store.HoldFragment) and fed
//     to the reassembler; when a message completes it is saved to the
//     inbox (store.SaveMessage, which also removes duplicates across
//     restarts) and long-polls waiting on WaitInbox wake up.
//
// Only after the entry is handled durably is it acknowledged to the
// provider (MessageAck in the next control slot), which then deletes it.
// A crash in between means the entry is retrieved again, and every step
// above is idempotent.
//
// # Documents
//
// The client never talks to authorities. At connection and whenever the
// current epoch's document is missing (and, from the publish phase on,
// the next epoch's), a control slot carries GetConsensus; the provider
// answers with the signed document in chunks, which the client verifies
// with the configured authority keys and threshold (pki.VerifyDocument)
// and checks against the configured geometry. The newest one is saved in
// the store, so a restart can send at once. Until a document is known
// no packet can be built, and the Poisson clocks wait.
//
// # Link
//
// Run dials the provider (link.Dial, authenticating its link key), runs
// the egress and a receiver over the link, and on any failure closes it
// and dials again after a backoff that doubles up to MaxBackoff, with
// jitter. The egress is the link's only writer.
//
// # Cost
//
// Idle, the client builds about six Sphinx packets a second at the
// default rates (λP every 200ms, λL and λD every 2s) and sends one control
// command a second; packet creation is most of its CPU time. Measured on
// the 2-core reference machine while it ran a whole test network (3
// authorities, 6 mixes, 2 providers; load average 3 to 5): 0.58–0.73% of
// one core over three one-minute windows, against the budget of 1%
// (DESIGN §8). cmd/chorusd's TestIdleCPU repeats the measurement against
// the in-process stand-in network (CHORUS_IDLE_CPU=60s): 0.67%.
//
// # What is never logged
//
// Above debug level the logs carry no per-packet data or timing, no
// mailbox, SURB or message ID, no contact name and no address (not even
// the provider's: network errors are reduced to a reason). Metrics
// (chorus_client_*) count by kind only.
package client
