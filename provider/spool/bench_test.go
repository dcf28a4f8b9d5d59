package spool

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// The benchmarks store 2606-byte payloads on the real file system, with an
// fsync per commit, and report messages per second and operations per
// commit (the group-commit batch size). Callers run in parallel as the
// provider's connections would: "callers" goroutines, each with a mailbox of
// its own.

func benchSpool(b *testing.B) (*Spool, *atomic.Int64) {
	s := openSpool(b, filepath.Join(b.TempDir(), "spool.db"), Config{})
	var commits atomic.Int64
	s.beforeCommit = func(int) { commits.Add(1) }
	return s, &commits
}

// report reports messages per second and operations per commit, where
// each message takes opsPerMsg operations.
func report(b *testing.B, opsPerMsg int, commits *atomic.Int64) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if n := commits.Load(); n > 0 {
		b.ReportMetric(float64(b.N*opsPerMsg)/float64(n), "ops/commit")
	}
}

// parallel runs fn b.N times in total from callers goroutines, each with a
// mailbox of its own (mailboxes 0 to callers-1).
func parallel(b *testing.B, callers int, fn func(m [MailboxIDLength]byte)) {
	var wg sync.WaitGroup
	for c := range callers {
		n := b.N / callers
		if c < b.N%callers {
			n++
		}
		wg.Go(func() {
			m := mailbox(c)
			for range n {
				fn(m)
			}
		})
	}
	wg.Wait()
}

// BenchmarkPut: store throughput.
func BenchmarkPut(b *testing.B) {
	payload := make([]byte, payloadLength)
	for _, callers := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s, commits := benchSpool(b)
			b.SetBytes(payloadLength)
			b.ResetTimer()
			commits.Store(0)
			parallel(b, callers, func(m [MailboxIDLength]byte) {
				if err := s.Put(m, payload); err != nil {
					b.Error(err)
				}
			})
			report(b, 1, commits)
		})
	}
}

// BenchmarkRetrieve: retrieve-and-acknowledge throughput (Peek, then Ack
// with its commit) from full mailboxes.
func BenchmarkRetrieve(b *testing.B) {
	payload := make([]byte, payloadLength)
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s, commits := benchSpool(b)
			// Fill the mailboxes the benchmark will drain, without
			// fsync.
			s.db.NoSync = true
			for w := range callers {
				for range b.N/callers + 1 {
					if err := s.Put(mailbox(w), payload); err != nil {
						b.Fatal(err)
					}
				}
			}
			s.db.NoSync = false
			b.SetBytes(payloadLength)
			b.ResetTimer()
			commits.Store(0)
			parallel(b, callers, func(m [MailboxIDLength]byte) {
				seq, _, _, ok, err := s.Peek(m)
				if err != nil || !ok {
					b.Errorf("Peek: %v %v", ok, err)
					return
				}
				if err := s.Ack(m, seq); err != nil {
					b.Error(err)
				}
			})
			report(b, 1, commits)
		})
	}
}

// BenchmarkStoreRetrieve: a message's whole life: Put, Peek, Ack.
func BenchmarkStoreRetrieve(b *testing.B) {
	payload := make([]byte, payloadLength)
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s, commits := benchSpool(b)
			b.SetBytes(payloadLength)
			b.ResetTimer()
			commits.Store(0)
			parallel(b, callers, func(m [MailboxIDLength]byte) {
				if err := s.Put(m, payload); err != nil {
					b.Error(err)
					return
				}
				seq, _, _, ok, err := s.Peek(m)
				if err != nil || !ok {
					b.Errorf("Peek: %v %v", ok, err)
					return
				}
				if err := s.Ack(m, seq); err != nil {
					b.Error(err)
				}
			})
			report(b, 2, commits)
		})
	}
}
