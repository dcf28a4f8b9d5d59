// Package consensus is the pure function at the heart of the directory
// authorities: from the signed votes and reveals exchanged for an epoch it
// computes that epoch's pki.Document. It does no I/O and reads no clock;
// every honest authority that feeds it the same set of inputs, in any order,
// gets the same document byte for byte, signs it, and the signatures
// combine into one published SignedDocument.
//
// Call Compute with the Config every authority shares (authority keys, a
// majority threshold, the number of layers, the minimum mixes per layer),
// the target epoch and the raw signed votes and reveals. It verifies every
// input itself, so an authority may pass what it stored without trusting it.
//
// # How agreement is reached
//
// Every decision needs a majority (cfg.Threshold of the configured
// authorities): enough valid votes to begin with; the same geometry and the
// same parameters; the same signed descriptor bytes for a node to be in; the
// same prior layer assignment for stickiness; enough reveals for a shared
// random value. Because any two majorities share an authority that signs at
// most one vote, two different documents cannot both be produced.
//
// # The shared random value
//
// Each authority commits in its vote to a secret 32-byte value (the commit
// binds epoch and authority) and reveals the value only after the votes are
// exchanged; the shared random value hashes the revealed values that match
// their commits. No authority can choose it, although the last to reveal can
// still withhold its reveal and so choose between two outcomes — the known
// limit of commit–reveal, acceptable because the value only seeds layer
// placement.
//
// # Layers
//
// Mixes keep the layer they had in the prior document where they can, so a
// packet in flight across an epoch boundary still finds a path and an
// observer learns little from churn; new mixes, and the fewest prior mixes
// needed to keep layers balanced (sizes differ by at most one), are placed in
// an order derived from the shared random value, so no operator chooses its
// layer. The document lists each layer, and the providers, sorted by node ID.
//
// Compute refuses to produce a document without at least one provider and
// cfg.MinMixesPerLayer mixes in every layer (*TooFewNodesError).
package consensus
