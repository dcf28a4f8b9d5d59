// Package arq makes delivery reliable: it tracks every fragment a client
// has sent until its SURB-ACK comes back, says which fragments to send
// again and when, and which messages have failed (DESIGN §3 step 6, §5.7).
//
// # The protocol
//
// Each forward fragment carries a SURB (client/route SURB, then
// sphinx.NewSURB) whose reply comes back to the sender's own mailbox with
// a fresh SURB ID. The recipient's provider answers through it when it has
// stored the fragment. The sender knows the per-hop delays it drew for
// both directions (route.Route.Delay), so it knows the least time the
// round trip can take; it waits that long plus a slack for queueing, link
// latency and its own retrieval interval, and then sends the fragment
// again. The slack doubles with each attempt (up to a cap): a network that
// is slow, rather than lossy, gets more time. After MaxAttempts attempts
// the message is reported failed, never silently dropped (DESIGN §1,
// promise 4).
//
// # Every attempt is a new packet on a new path
//
// The caller must build each attempt from scratch: a new route (so a
// fragment lost to a failed or malicious node does not meet it again, and
// so two attempts cannot be linked by their common path), a new SURB with
// a new ID, and a new Sphinx packet (the old one would be a replay, which
// every hop drops). The retransmission takes the next λP slot like any
// real packet (client/egress): it costs no extra frame on the wire.
//
// # Never twice
//
// Tracker.Acked accepts each fragment's acknowledgement once. An ACK for
// an earlier attempt that arrives after a retransmission still counts (the
// fragment did arrive), and then the later attempt's ACK, a duplicate, or
// an ACK for a failed or unknown message is reported as unknown and is
// harmless. An acknowledged fragment is never listed for retransmission,
// and Sent refuses it, so a caller that queued a retransmission just before
// the ACK arrived learns not to send it. The recipient removes duplicates
// anyway (client/inbox); this package makes sure it rarely has to.
//
// # Entry points
//
// Tracker is a pure state machine: Track a message, record each attempt
// with Sent (which returns the attempt's deadline, for the caller to
// persist), feed ACKs to Acked, and ask Due(now) what has expired.
// Tracker.Run is the thin timer-driven shell that calls Due when the next
// deadline passes and hands the result to a callback. Snapshot returns
// the whole state as a plain struct for client/store to persist, and
// Restore rebuilds a Tracker from it after a restart; fragments that were
// waiting to be sent again are listed again by the first Due.
//
// Retired SURB IDs are reported whenever the tracker stops recognising
// them, so the caller can wipe their decryption tokens.
//
// SURB IDs, fragment timings and attempt counts are metadata: never log
// them.
package arq
