package delay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors returned by Push for a packet it drops (each drop is counted),
// and by Run.
var (
	// ErrTooLate: the packet's delay exceeds the maximum.
	ErrTooLate = errors.New("delay: delay exceeds the maximum")
	// ErrFull: holding the packet would exceed the packet or byte bound.
	ErrFull = errors.New("delay: queue full")
	// ErrRunning: Run was called while another Run is active.
	ErrRunning = errors.New("delay: queue already running")
)

// batchSize is how many due packets Run takes from the queue under one
// lock before releasing them.
const batchSize = 64

// Config bounds a Queue.
type Config struct {
	// MaxPackets and MaxBytes bound what the queue holds; a packet that
	// would exceed either is dropped (the newest goes: see ErrFull).
	MaxPackets int
	MaxBytes   int64
	// MaxDelay is the document's maximum per-hop delay: packets asking for
	// more are dropped (ErrTooLate). SetMaxDelay changes it.
	MaxDelay time.Duration
	// Now is the clock; nil means time.Now. Timers are the runtime's, so a
	// test drives both with testing/synctest.
	Now func() time.Time
	// Registerer receives the chorus_mix_delay_* metrics; nil registers
	// nothing.
	Registerer prometheus.Registerer
}

// Queue holds packets until their release time and hands each to a
// release function, in order of release time (ties in order of Push).
// Push is safe for concurrent use; one Run releases.
type Queue[T any] struct {
	release    func(T)
	now        func() time.Time
	base       time.Time // release times are kept as nanoseconds after base
	maxPackets int
	maxBytes   int64
	maxDelay   atomic.Int64
	wake       chan struct{}
	running    atomic.Bool
	m          *metrics

	mu    sync.Mutex
	heap  []entry[T]
	bytes int64
	seq   uint64
}

// entry is one held packet: 24 bytes plus the item.
type entry[T any] struct {
	at   int64  // release time, nanoseconds after base
	seq  uint64 // push order: ties release first in, first out
	size int64
	item T
}

func (a *entry[T]) before(b *entry[T]) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// New returns a queue that calls release, from Run's goroutine, for each
// packet whose time has come. release must not block for long: it holds
// up every packet due after it. New starts nothing.
func New[T any](cfg Config, release func(T)) (*Queue[T], error) {
	switch {
	case release == nil:
		return nil, errors.New("delay: new queue: nil release function")
	case cfg.MaxPackets <= 0:
		return nil, fmt.Errorf("delay: new queue: max packets %d, want > 0", cfg.MaxPackets)
	case cfg.MaxBytes <= 0:
		return nil, fmt.Errorf("delay: new queue: max bytes %d, want > 0", cfg.MaxBytes)
	case cfg.MaxDelay < 0:
		return nil, fmt.Errorf("delay: new queue: max delay %v, want >= 0", cfg.MaxDelay)
	}
	q := &Queue[T]{
		release:    release,
		now:        cfg.Now,
		maxPackets: cfg.MaxPackets,
		maxBytes:   cfg.MaxBytes,
		wake:       make(chan struct{}, 1),
		heap:       make([]entry[T], 0, min(cfg.MaxPackets, 1024)),
	}
	if q.now == nil {
		q.now = time.Now
	}
	q.base = q.now()
	q.maxDelay.Store(int64(cfg.MaxDelay))
	var err error
	if q.m, err = newMetrics(cfg.Registerer, q.Len, q.Bytes); err != nil {
		return nil, fmt.Errorf("delay: new queue: %w", err)
	}
	return q, nil
}

// SetMaxDelay changes the maximum delay for packets pushed from now on,
// for instance when a new document arrives. Negative means zero.
func (q *Queue[T]) SetMaxDelay(d time.Duration) { q.maxDelay.Store(int64(max(d, 0))) }

// Push holds item, of size bytes, until arrival+delay. arrival is when the
// packet reached the node (so time spent unwrapping it counts against its
// delay); a zero arrival, or one later than now, means now.
//
// A packet whose delay exceeds the maximum is dropped with ErrTooLate; one
// that would take the queue over its packet or byte bound is dropped with
// ErrFull (the newest packet is the one dropped: those already held keep
// their place). Both are counted. On an error the caller keeps item.
func (q *Queue[T]) Push(item T, size int, arrival time.Time, delay time.Duration) error {
	if delay > time.Duration(q.maxDelay.Load()) {
		q.m.dropped(reasonTooLate)
		return ErrTooLate
	}
	delay = max(delay, 0)
	now := q.now()
	if arrival.IsZero() || arrival.After(now) {
		arrival = now
	}
	e := entry[T]{at: int64(arrival.Sub(q.base) + delay), size: int64(max(size, 0)), item: item}

	q.mu.Lock()
	if len(q.heap) >= q.maxPackets || q.bytes+e.size > q.maxBytes {
		q.mu.Unlock()
		q.m.dropped(reasonFull)
		return ErrFull
	}
	q.seq++
	e.seq = q.seq
	q.bytes += e.size
	q.heap = append(q.heap, e)
	first := q.up(len(q.heap)-1) == 0
	q.mu.Unlock()

	if first { // the earliest packet changed: Run must rearm its timer
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Run releases packets as they fall due until ctx is done, then returns
// nil. Packets still held stay in the queue (a later Run releases them).
// Only one Run may be active at a time (else ErrRunning).
func (q *Queue[T]) Run(ctx context.Context) error {
	if !q.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer q.running.Store(false)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	batch := make([]entry[T], batchSize)
	for {
		n, now, next, ok := q.due(batch)
		for i := range batch[:n] {
			q.m.released(time.Duration(now - batch[i].at))
			q.release(batch[i].item)
			batch[i] = entry[T]{} // let the item go
		}
		if n == len(batch) { // perhaps more are due
			select {
			case <-ctx.Done():
				return nil
			default:
				continue
			}
		}
		if ok {
			timer.Reset(time.Duration(next - now))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-q.wake:
		}
	}
}

// due moves up to len(buf) packets whose release time has come into buf.
// It returns how many, the time it read, and the release time of the
// earliest packet left (ok false if none is left).
func (q *Queue[T]) due(buf []entry[T]) (n int, now, next int64, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now = int64(q.now().Sub(q.base))
	for n < len(buf) && len(q.heap) > 0 && q.heap[0].at <= now {
		buf[n] = q.pop()
		q.bytes -= buf[n].size
		n++
	}
	if len(q.heap) == 0 {
		return n, now, 0, false
	}
	return n, now, q.heap[0].at, true
}

// Len returns the number of packets held.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.heap)
}

// Bytes returns the total size of the packets held.
func (q *Queue[T]) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// The heap is 4-ary: a node's children are contiguous (four entries, two
// cache lines for a pointer item), and it is half as deep as a binary
// heap, which matters at 100,000 packets where the lower levels miss the
// cache.
const arity = 4

// up restores the heap order from leaf i upwards and returns i's final
// position.
func (q *Queue[T]) up(i int) int {
	h := q.heap
	e := h[i]
	for i > 0 {
		p := (i - 1) / arity
		if !e.before(&h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = e
	return i
}

// pop removes and returns the earliest entry; the heap is not empty.
func (q *Queue[T]) pop() entry[T] {
	h := q.heap
	top := h[0]
	last := len(h) - 1
	e := h[last]
	h[last] = entry[T]{}
	h = h[:last]
	q.heap = h
	if last == 0 {
		return top
	}
	i := 0
	for {
		first := arity*i + 1
		if first >= last {
			break
		}
		c := first
		for j := first + 1; j < min(first+arity, last); j++ {
			if h[j].before(&h[c]) {
				c = j
			}
		}
		if !h[c].before(&e) {
			break
		}
		h[i] = h[c]
		i = c
	}
	h[i] = e
	return top
}
