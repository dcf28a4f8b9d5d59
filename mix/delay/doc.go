// Package delay holds packets for the per-hop delay their senders chose.
//
// In Loopix each sender draws every hop's delay from an exponential
// distribution and writes it into the packet (the NodeDelay command); the
// hop holds the packet for that long. Because each packet leaves at a time
// independent of when the others arrived, an observer cannot match a node's
// outputs to its inputs by order or timing. A Queue does the holding:
//
//	q, err := delay.New(delay.Config{MaxPackets: ..., MaxBytes: ..., MaxDelay: doc.MaxDelay},
//		func(p *Packet) { forward(p) })
//	go q.Run(ctx)
//	...
//	err = q.Push(p, len(p.Buf), p.Arrived, cmd.Delay) // per packet, from any worker
//
// Run calls the release function, from its own goroutine, for each packet
// at arrival + delay, in order of release time (ties in order of Push).
// The release function should hand the packet on without blocking (the
// forwarder has its own bounded queues): a slow release delays every
// packet due after it.
//
// # What is refused
//
// A packet whose delay exceeds the document's maximum is dropped with
// ErrTooLate: a sender (or an attacker) cannot park packets in the node for
// longer than the network agreed, to mount timing attacks or hold memory.
// The maximum changes with the document (SetMaxDelay). Push takes the
// packet's arrival time and its delay rather than a release time because
// the rule is about the delay, and so that the time spent unwrapping the
// packet counts against its delay instead of adding to it.
//
// The queue is bounded in packets and in bytes. A packet that would exceed
// either bound is dropped with ErrFull: the newest packet goes, so the
// packets already accepted keep their place and their timing. Every drop is
// counted by reason (chorus_mix_delay_dropped_total{reason="too_late"|"full"})
// and the caller keeps the packet (to recycle its buffer).
//
// # Structure and cost
//
// The queue is a 4-ary min-heap of small entries (release time, push
// sequence, size and the item: 32 bytes for a pointer item) under one
// mutex, and one goroutine with one time.Timer armed for the earliest
// entry. Push wakes Run only when the new packet is due before every other.
// Run takes up to 64 due packets at a time under the lock and releases them
// outside it. Nothing is allocated per packet beyond the heap's amortised
// growth. With 100,000 default-size packets (3,082 bytes, which Go's
// allocator rounds up to 3,200) held, the heap is about 312 MiB including
// the packet buffers, of which the queue's own share is 32 bytes per
// packet (see BenchmarkHold100k). That is the live heap: if every packet
// gets a fresh buffer, the garbage collector's default headroom (GOGC=100)
// let a process holding 100,000 packets under churn reach 564 MB resident
// in a measurement, against 374 MB with GOMEMLIMIT=400MiB. A mix should
// recycle packet buffers (the caller keeps a refused packet; the release
// function passes a held one on) or set a memory limit. The lateness of
// each release (time
// released minus arrival plus delay) is a histogram,
// chorus_mix_delay_release_lateness_seconds; the queue's depth is
// chorus_mix_delay_queue_packets and chorus_mix_delay_queue_bytes.
//
// Times are read from the injected clock (time.Now by default) and waited
// on with the runtime's timers, so testing/synctest drives a queue through
// hours of delays in microseconds; the tests compare it, step by step, with
// a sorted slice.
package delay
