package delay

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// PacketSize is the default Sphinx packet length (DESIGN §5.1).
const packetSize = 3082

// packet stands for the mix's packet: a buffer and a little metadata.
type packet struct {
	buf  []byte
	next uint64
}

// BenchmarkHold100k reports the memory of 100,000 default-size packets
// held in a queue (buffers included), and the queue's own overhead per
// packet.
func BenchmarkHold100k(b *testing.B) {
	const n = 100_000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	rng := rand.New(rand.NewPCG(1, 1))
	hold := func(size int) (*Queue[*packet], uint64) {
		before := heap()
		q, err := New(Config{MaxPackets: n, MaxBytes: n * packetSize, MaxDelay: time.Hour}, func(*packet) {})
		if err != nil {
			b.Fatal(err)
		}
		for range n {
			p := &packet{buf: make([]byte, size)}
			if err := q.Push(p, packetSize, time.Time{}, time.Duration(rng.Int64N(int64(time.Hour)))); err != nil {
				b.Fatal(err)
			}
		}
		return q, heap() - before
	}
	var total, bare uint64
	for b.Loop() {
		q, t := hold(packetSize)
		if q.Len() != n || q.Bytes() != n*packetSize {
			b.Fatalf("holds %d packets, %d bytes", q.Len(), q.Bytes())
		}
		runtime.KeepAlive(q)
		q, bare = hold(0) // the same without packet buffers
		runtime.KeepAlive(q)
		total = t
	}
	b.ReportMetric(float64(total)/(1<<20), "MiB/100k-packets")
	b.ReportMetric(float64(total)/n, "B/packet")
	b.ReportMetric(float64(bare)/n, "B/packet-without-buffer")
	b.ReportMetric(float64(sizeof(entry[*packet]{})), "B/heap-entry")
}

// BenchmarkHeapAt100k measures one push and one pop at a depth of
// 100,000 packets: the queue's own cost per packet, no timers.
func BenchmarkHeapAt100k(b *testing.B) {
	const n = 100_000
	q, _ := New(Config{MaxPackets: n + 1, MaxBytes: 1 << 40, MaxDelay: time.Hour}, func(*packet) {})
	rng := rand.New(rand.NewPCG(2, 2))
	p := &packet{}
	for range n {
		q.Push(p, packetSize, time.Time{}, time.Duration(rng.Int64N(int64(time.Second))))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		q.Push(p, packetSize, time.Time{}, time.Duration(rng.Int64N(int64(time.Second))))
		q.mu.Lock()
		e := q.pop()
		q.bytes -= e.size
		q.mu.Unlock()
	}
}

// BenchmarkPushRelease measures a packet's way through a running queue:
// Push from two goroutines with no delay, released by Run through the
// timer-free path and the callback.
func BenchmarkPushRelease(b *testing.B) {
	var released atomic.Int64
	q, _ := New(Config{MaxPackets: 1 << 20, MaxBytes: 1 << 40, MaxDelay: time.Hour}, func(*packet) { released.Add(1) })
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	p := &packet{}
	var pushed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for q.Push(p, packetSize, time.Time{}, 0) != nil {
				runtime.Gosched() // full: let Run catch up
			}
			pushed.Add(1)
		}
	})
	for released.Load() < pushed.Load() {
		runtime.Gosched()
	}
	b.StopTimer()
	cancel()
	<-done
}
