// Package authority is the directory authority daemon (DESIGN §5.3): it
// collects signed node descriptors, votes with its peer authorities each
// epoch, and publishes the signed consensus document that every node and
// client uses.
//
// New builds an Authority from a Config and a few collaborators (Deps: a
// logger, a metrics registerer, a clock, a randomness source, an HTTP
// client, optionally a listener) and starts nothing; Run serves and runs the
// timetable until its context is cancelled, and returns only when every
// goroutine it started has stopped. Ready (behind /readyz) reports ready
// once the authority serves and holds a published document for the current
// epoch.
//
// # HTTP API
//
// Every body is a signed CBOR object from package pki, so integrity never
// depends on the transport:
//
//	POST /v1/descriptor         a node uploads its signed descriptor (at most
//	                            pki.MaxDescriptorSize bytes) for the current
//	                            epoch (while it has no document yet), the next,
//	                            or the one after; 200 when accepted, else 400
//	                            (malformed or invalid), 403 (bad signature, or
//	                            a node not on the allowed list), 409 (wrong or
//	                            already decided epoch), 413 (too large)
//	GET  /v1/document/{epoch}   the published document with its signatures;
//	                            404 until threshold authorities signed it
//	GET  /v1/vote/{epoch}       for peers: this authority's signed vote
//	GET  /v1/reveal/{epoch}     for peers: its signed reveal, once revealed
//	GET  /v1/signature/{epoch}  for peers: the document it computed with the
//	                            signatures it holds over it
//
// Each rejected upload is counted in
// chorus_authority_descriptors_rejected_total by a reason from a fixed set;
// nothing about the uploader (its address) is logged above debug level.
//
// # The round
//
// Authorities pull from each other: one goroutine per peer fetches, every
// poll interval, whatever the rounds for the current and the next epoch still
// miss from that peer (its vote, its reveal, its signature, or an already
// published document), so a slow or dead peer holds up no one, and an
// authority that restarts simply asks again for what it lacks. The timetable
// and the bootstrap rule are described in round.go: in short, votes are made
// at the start of the vote phase of pki/epoch, each step moves on as soon as
// every authority has answered or at the end of its phase, and a network
// without a document for the current epoch makes one at once (bootstrap)
// instead of waiting an epoch.
//
// The document is computed by the pure function of pki/consensus from the
// votes and reveals; it is published once threshold authorities (a majority)
// signed the identical bytes, and signatures that arrive later are added.
//
// # Persistence
//
// Everything is kept in one bbolt file in the data directory: descriptors,
// own and peers' votes and reveals, signatures, computed and published
// documents, and this authority's own commit–reveal value. Each is written
// (with fsync) before it is acted on or served, and an own vote, reveal or
// value is never replaced, so an authority restarted in the middle of a
// round serves the same vote and reveal as before, rejoins the round and
// signs. Records older than two epochs are pruned.
package authority
