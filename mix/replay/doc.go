// Package replay keeps a mix from processing the same Sphinx packet twice.
//
// # Why
//
// A Sphinx packet unwraps to the same output every time. If a mix forwarded
// a copy that an attacker replayed, the attacker could watch which output
// appears twice and link the packet going in to the packet coming out,
// undoing the mix for that packet. So each hop records the packet's replay
// tag (SHA-512/256 of its group element alpha, sphinx.Result.ReplayTag) and
// drops any packet whose tag it has seen before under the same key. Tags are
// per key: the filter of an epoch is forgotten when that epoch's Sphinx key
// is erased, since a packet for an erased key cannot be unwrapped at all.
//
// # Using it
//
// A mix opens one Set on a directory of its own (OpenSet) and, for every
// packet whose MAC verified under epoch E's key, calls
// Set.TestAndSet(E, &res.ReplayTag) before handing the packet on: seen
// means drop; ErrFull means the key's filter is full and the packet is
// refused (counted); ErrRetired means the key went away meanwhile. The
// rotation's OnRetire is Set.Retire, so a filter is erased with its key;
// Set.Run syncs the filters to disk periodically; Set.Close at shutdown.
// Filter is one key's filter, for callers that manage epochs themselves.
//
// # The filter
//
// Each filter is a blocked Bloom filter: the bitmap is cut into 64-byte
// blocks (one cache line), a tag chooses one block and sets k bits inside
// it. A check costs one cache miss instead of k (k is 16 at the default
// rate, over a bitmap far larger than any cache), for about a third more
// memory than a classic Bloom filter at the same false-positive rate. The
// tag is already uniformly random, so its bytes are used directly, with no
// hashing: 8 bytes, multiplied by a random odd salt kept in the file,
// choose the block (a sender who grinds alphas cannot aim tags at one block
// without the salt), and k 9-bit fields of the next 24 bytes choose the
// bits. Open sizes the bitmap for the capacity and target rate from the
// exact expected rate of a blocked filter (Poisson block loads), 5% below
// the target to cover the model's error; the measured rate at capacity
// matches it (see TestFalsePositiveRate and BenchmarkEpochFilter). For one
// default epoch, 20 minutes at 10,000 packets/s (12,000,000 tags):
//
//	target rate   k    bits/tag   memory
//	1e-4          12   22.1       31.6 MiB
//	1e-6          16   38.7       55.4 MiB
//	1e-9          21   79.6      113.9 MiB
//
// A false positive drops one good packet (the sender's ARQ resends it), so
// 1e-6 is plenty. Size the capacity as the expected packet rate times the
// key's lifetime (epoch plus grace) with headroom; a filter keeps the size
// it was created with.
//
// A filter counts the tags it holds. At capacity a new tag is refused
// (ErrFull, counted in chorus_mix_replay_refused_full_total) rather than
// recorded: past capacity the false-positive rate would climb without
// bound, and a filter that silently saturates would drop everything, while
// one that stops recording would let replays through. Replays of recorded
// tags are still reported as seen.
//
// # Concurrency
//
// Hop workers call TestAndSet concurrently. Setting k bits spread over
// several words is not one atomic operation, and with atomic ORs alone two
// workers handling copies of the same packet at the same moment could each
// set some of its bits and both conclude it was new: exactly the replay the
// filter exists to stop. So each block is guarded by one of 256 striped,
// cache-line-padded mutexes (chosen by block number): test-and-set of a tag
// is linearizable, uncontended locking costs some 20 ns, and workers on
// different blocks never wait for each other.
//
// # Durability
//
// Each filter is a file mapped MAP_SHARED: setting a bit is a store into
// the kernel's page cache. When TestAndSet returns, the tag survives the
// process being killed (kill -9, a crash, an OOM kill) at any later moment,
// so it is durable before the packet it belongs to even enters the delay
// queue, let alone is released; no batching or coupling to the delay queue
// is needed. Surviving a power failure or kernel crash needs the pages on
// disk: Set.Run calls msync every SyncInterval (10 s by default), Close
// syncs, and the kernel writes dirty pages back on its own (about 30 s).
// The window is deliberate: tags are random, so within seconds at full rate
// every page of the bitmap is dirty and each sync writes the whole file
// (55 MiB per 10 s is 5.5 MB/s). After a power failure every packet held in
// the delay queue is lost too; what an attacker gains is one replay each of
// packets that arrived in the last few seconds before it, and only by
// cutting the machine's power.
//
// The alternative, an append-only log of tags written in batches before the
// packets are released, writes less (32 bytes per tag) but grows to 384 MB
// per key per epoch at full rate, must be read back into a filter at every
// start, and needs the delay queue to wait for each batch; the mapped file
// needs none of that and restarts instantly.
//
// Files are created complete or not at all (written under a temporary name,
// synced and linked into place) and their blocks are reserved with
// fallocate, so a store into the mapping can never fault on a full disk.
// Each open filter holds an exclusive flock on its file, so two processes
// never share one. The bitmap and counters are in the machine's byte order:
// files are not meant to move between machines.
//
// # A damaged file
//
// Opening a file whose header is damaged (bad magic, version or checksum,
// another epoch's file, a length that disagrees with the header) fails with
// ErrCorrupt, and OpenSet opens every file at start, so the node refuses to
// start. Starting with an empty filter instead would accept one replay of
// every packet already seen under that key. The operator's way out is to
// delete the damaged filter file together with the Sphinx key file of the
// same epoch: with the key gone no packet for that epoch can be unwrapped,
// so none can be replayed, and the node runs on with its other keys.
//
// # Memory and metrics
//
// A filter's memory is its mapping (MemoryBytes): file-backed page cache,
// shown as shared resident memory once packets have touched every page. A
// mix holds two or three filters at a time (previous epoch during the
// grace period, current, next). Metrics, none labelled:
// chorus_mix_replay_replays_total, chorus_mix_replay_refused_full_total,
// chorus_mix_replay_sync_failures_total, chorus_mix_replay_fill_ratio (tags
// over capacity of the fullest open filter), chorus_mix_replay_memory_bytes
// and chorus_mix_replay_filters.
package replay
