package replay

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTestAndSet measures recording fresh tags into a filter sized
// for one default epoch (20 minutes at 10,000 packets/s), from parallel
// workers.
func BenchmarkTestAndSet(b *testing.B) {
	f := mustOpen(b, b.TempDir(), 1, 12_000_000, 1e-6)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.NewChaCha8([32]byte{byte(seed.Add(1))})
		var tag [32]byte
		for pb.Next() {
			r.Read(tag[:])
			if _, err := f.TestAndSet(&tag); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEpochFilter fills a filter for one default epoch (12,000,000
// tags at a target false-positive rate of 1e-6) and reports its memory and
// its measured false-positive rate. It does the work once, whatever b.N.
func BenchmarkEpochFilter(b *testing.B) {
	const capacity, target = 12_000_000, 1e-6
	const probes = 50_000_000
	f := mustOpen(b, b.TempDir(), 1, capacity, target)
	r := rand.NewChaCha8([32]byte{1})
	var tag [32]byte
	start := time.Now()
	for range capacity {
		r.Read(tag[:])
		if _, err := f.TestAndSet(&tag); err != nil {
			b.Fatal(err)
		}
	}
	insert := time.Since(start)
	hits := 0
	for range probes {
		r.Read(tag[:])
		if f.contains(&tag) {
			hits++
		}
	}
	b.ReportMetric(float64(f.MemoryBytes())/(1<<20), "MiB")
	b.ReportMetric(float64(hits)/probes, "fp-measured")
	b.ReportMetric(target, "fp-target")
	b.ReportMetric(float64(hits), "fp-hits")
	b.ReportMetric(float64(f.k), "k")
	b.ReportMetric(float64(insert.Nanoseconds())/capacity, "ns/insert")
	b.ReportMetric(f.fillBits(), "bits-set")
}
