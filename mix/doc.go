// Package mix is the mix node: it takes Sphinx packets from links, removes
// its layer, holds each packet for the delay its sender chose and sends it
// on to the next hop, and it keeps its keys, its descriptor and its loop
// cover traffic going epoch after epoch (DESIGN §3, §5.4).
//
// # The walk of one message
//
//  1. The app gives chorusd a message; chorusd splits it into fragments,
//     encrypts each to the recipient and queues them durably.
//  2. On each tick of its λP Poisson clock chorusd sends the next fragment
//     (or a decoy) as a Sphinx packet on a fresh path: own provider →
//     layer 0 → layer 1 → layer 2 → recipient's provider, with a delay for
//     each hop drawn from Exp(μ) and a SURB for the acknowledgement.
//  3. The sender's provider and then each mix run the pipeline of this
//     package: a link reader copies the packet into a pooled buffer, a
//     worker removes one layer (mix/hop: the current, previous or next
//     epoch's key, then the replay check), the delay queue (mix/delay)
//     holds it until arrival + its NodeDelay, and the forwarder
//     (mix/forward) writes it to the link of the next hop.
//  4. The recipient's provider removes the last layer, finds a Recipient
//     command and hands the payload to its mailbox (the Deliver hook), then
//     sends the ACK back with the SURB.
//  5. The recipient's chorusd fetches it at a constant rate, decrypts,
//     reassembles; 6. the sender's chorusd gets the ACK, or sends again.
//
// # Pipeline and Node
//
// Pipeline is the part a provider shares with a mix, so it is composed,
// not copied:
//
//	p, err := mix.NewPipeline(cfg, deps) // opens keys and replay filters
//	go p.Run(ctx)                        // fetches the first document, then runs
//	<-p.Started()                        // geometry known; LinkConfig valid
//	p.ServeLink(ctx, conn)               // an authorized node link: read packets
//	in := p.NewIngress()                 // any other source, e.g. a client link
//	in.Submit(ctx, pkt, arrival)         // unwrapped here like any packet
//	p.Inject(next, pkt, delay)           // a packet this node made (SURB reply)
//
// Config.Deliver receives the packets that end at the node (a provider's
// mailbox hook); without it they are dropped and counted. LinkConfig and
// Authorize give the link configuration and the check a listener needs
// for links from other nodes: a node accepts a link only from a node that
// the previous, current or next document places in a layer allowed to
// send to its own (pki.Document.MaySend).
//
// Node is a mix: a Pipeline, with Deliver unset, plus a listener that
// accepts links (each handshake in its own goroutine, a bounded number at
// once) and serves them with ServeLink.
//
// Inside, a Pipeline runs:
//
//   - workers (Config.Workers, GOMAXPROCS by default) that unwrap packets
//     in place, taking them from one bounded queue that every source
//     feeds; each source (link) has a credit of Config.LinkCredit packets
//     in that queue, so a peer that floods it, with garbage or not, slows
//     only itself;
//   - the delay queue, bounded in packets and bytes (newest dropped);
//   - the forwarder, one bounded in-order queue and link per next hop,
//     dialled ahead of need for the peers of all three documents;
//   - the document tracker: at every epoch boundary, and every poll
//     interval while one is missing, it fetches the previous, current and
//     next documents, updates next hops, the maximum delay, and closes
//     incoming links that are no longer allowed;
//   - the Sphinx keys (mix/rotation, in DataDir/sphinx): made three epochs
//     ahead, kept for Config.KeyGrace into the next epoch, then erased
//     together with their replay filter (mix/replay, in DataDir/replay,
//     durable across restarts); the filters of the current and next epoch
//     are created ahead of need;
//   - the descriptor upload: in epoch E the descriptor for E+1 (and for E
//     while no document for E exists), with Sphinx keys for three epochs,
//     until the threshold of authorities accepted it;
//   - loop cover traffic (see loops.go): λM packets through one node of
//     each other layer and a provider back to this node, which recognises
//     them by a Recipient only it knows; their round trip and loss are
//     measured.
//
// Buffers: every packet lives in one buffer of the packet length, taken
// from a free list when it is read from a link and returned when it is
// sent or dropped; nothing else is allocated per packet. Every queue is
// bounded, and every drop is counted in chorus_mix_packets_dropped_total
// by a reason from a fixed set; a warning summarising the drops is logged
// at most every ten seconds. Nothing about a packet or a peer's address is
// logged above debug level.
//
// # Lifecycle and metrics
//
// New and NewPipeline start nothing. Run returns only when every goroutine
// it started has stopped: when its context ends it stops taking packets,
// closes incoming links, lets the packets it holds leave (those in the
// delay queue at their time, then those queued for next hops whose links
// are up) for up to Config.DrainTimeout, then stops. Close (after Run) releases the key ring
// and the replay filters; it is idempotent.
//
// Ready, behind /readyz, holds when the node has the current document,
// that document carries the Sphinx key the node holds for the epoch (its
// keys are published), and a link to at least one next hop is up.
//
// Metrics (chorus_mix_*, no label but a bounded reason or result):
// packets_in_total, packets_delivered_total, packets_dropped_total{reason},
// unwrap_seconds, work_queue_packets, links_incoming, document_epoch,
// descriptor_uploads_total{result}, loop_{sent,received,lost}_total,
// loop_rtt_seconds; from the packages it runs: chorus_mix_delay_* (queue
// depth, lateness), chorus_mix_forward_* (packets sent, queue depth, peers
// connected), chorus_mix_replay_* (filter fill), chorus_link_*.
package mix
