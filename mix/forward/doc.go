// Package forward sends a node's packets on to their next hops: one
// outgoing link per peer, dialled ahead of need and kept up (DESIGN §4).
//
// A Forwarder is told its peers, the nodes this node may send to according
// to the documents it holds (SetPeers, with the descriptors of the current
// and adjacent epochs), and from then on keeps one link to each: it dials
// every peer at once, without waiting for a packet, redials with
// exponential backoff and jitter when a link fails, and closes the links of
// peers that leave the documents. The dialer checks that the responder
// holds the link key the document publishes for that node (package link),
// so a packet never goes to an impostor.
//
// Send hands one packet to a peer's queue and never blocks: each peer has
// a bounded FIFO queue drained by one goroutine, so packets to one peer
// leave in the order they were sent, and a slow or dead peer holds up no
// other. When a queue is full the newest packet (the one being sent) is
// dropped and counted; while a link is down its queue keeps filling up to
// that bound and is sent once the link is back. Packets still queued when
// their peer leaves the documents, or when Run returns, are dropped and
// counted.
//
// Packets are caller-owned buffers: after a successful Send the Forwarder
// owns the buffer until it hands it back through Config.Release (sent or
// dropped), so the node can recycle packet buffers without allocating;
// after a failed Send the caller keeps it.
//
// New starts nothing; Run dials and sends until its context ends and
// returns when every goroutine it started has stopped. Metrics are named
// chorus_mix_forward_*; every drop is also reported to Config.Dropped with
// a reason from a fixed set, so the node can keep one drop counter.
package forward
