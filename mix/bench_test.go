package mix

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/chorus-mixnet/chorus/mix/delay"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/replay"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
)

// alphaKey identifies a packet after the mix's unwrap by its blinded
// group element, which the test computes in advance.
type alphaKey [32]byte

func alphaOf(pkt []byte) (k alphaKey) {
	copy(k[:], pkt[2:34])
	return k
}

// benchPackets builds count packets on path, whose first hop holds key,
// and the alpha each will carry when that hop forwards it.
func benchPackets(b *testing.B, geo *sphinx.Geometry, key *keys.SphinxPrivateKey, path []sphinx.PathHop, count int) ([][]byte, map[alphaKey]int) {
	b.Helper()
	pkts := make([][]byte, count)
	index := make(map[alphaKey]int, count)
	var mu sync.Mutex
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			var res sphinx.Result
			tmp := make([]byte, geo.PacketLength())
			for i := w; i < count; i += workers {
				p, err := sphinx.NewPacket(rand.Reader, geo, path, nil)
				if err != nil {
					panic(err)
				}
				copy(tmp, p)
				if err := sphinx.UnwrapInto(geo, key, tmp, &res); err != nil {
					panic(err)
				}
				mu.Lock()
				pkts[i] = p
				index[alphaOf(tmp)] = i
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return pkts, index
}

// stream sends pre-built packets over a link to the node under test and
// records when each reached the sink.
type stream struct {
	b          *testing.B
	c          *link.Conn
	sink       *sink
	pkts       [][]byte
	mu         sync.Mutex
	sent, recv []time.Time
}

func newStream(b *testing.B, c *link.Conn, s *sink, pkts [][]byte, index map[alphaKey]int) *stream {
	st := &stream{b: b, c: c, sink: s, pkts: pkts, sent: make([]time.Time, len(pkts)), recv: make([]time.Time, len(pkts))}
	s.mu.Lock()
	s.seen = func(pkt []byte, at time.Time) {
		if i, ok := index[alphaOf(pkt)]; ok {
			st.mu.Lock()
			st.recv[i] = at
			st.mu.Unlock()
		}
	}
	s.mu.Unlock()
	return st
}

// run sends packets from..to, one every interval (zero: as fast as the
// link takes them), and returns when the sink has them all.
func (st *stream) run(from, to int, interval time.Duration) time.Duration {
	base := st.sink.count()
	ctx := context.Background()
	start := time.Now()
	for i := from; i < to; i++ {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i-from) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		st.sent[i] = time.Now()
		if err := st.c.Send(ctx, link.SendPacket{Packet: st.pkts[i]}); err != nil {
			st.b.Fatal(err)
		}
	}
	waitFor(st.b, "every packet at the sink", func() bool { return st.sink.count() == base+to-from })
	return time.Since(start)
}

// latencies are the median and 99th percentile of the time from the
// feeder's Send to the sink's Recv of packets from..to.
func (st *stream) latencies(from, to int) (p50, p99 time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var l []time.Duration
	for i := from; i < to; i++ {
		l = append(l, st.recv[i].Sub(st.sent[i]))
	}
	slices.Sort(l)
	return l[len(l)/2], l[len(l)*99/100]
}

func reportLatencies(b *testing.B, suffix string, p50, p99 time.Duration) {
	b.ReportMetric(float64(p50.Microseconds()), "p50"+suffix+"-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99"+suffix+"-µs")
}

// BenchmarkNodeThroughput runs the whole pipeline of one mix over real
// TCP links on loopback: a provider's link feeds it pre-built packets
// with zero delay, and a sink in the next layer receives them. It reports
// the forwarded rate when the feeder sends as fast as it can, and the
// latency the node adds (from the feeder's Send to the sink's Recv) at
// about half that rate ("saturated" latencies include the feeder's socket
// buffers filling up: an open-loop sender).
//
// node-process (Linux) is the measurement DESIGN §8 asks for: the node
// runs in a child process with GOMAXPROCS=1 pinned to one CPU, the feeder
// and the sink in this process pinned to the other, and packets/s/node-core
// is the packets forwarded per second of the child's CPU time (user +
// system) over the saturated run. Set CHORUS_MIX_BENCH_NODE_PROFILE to a
// file name to write the child's CPU profile of that run.
//
// in-process runs the feeder, the sink and the node in this process on
// the same cores; its packets/s/core divides by GOMAXPROCS, so it charges
// the feeder's and the sink's link crypto to the node.
func BenchmarkNodeThroughput(b *testing.B) {
	b.Run("node-process", benchNodeProcess)
	b.Run("in-process", benchNodeInProcess)
}

func benchNodeInProcess(b *testing.B) {
	n := startSmallNet(b, func(c *Config) { c.MaxPacketRate = 100 })
	c, err := dialAs(b, "provider-0", n.mix.addr, node(b, n.doc, "mix-0-0").LinkKey, n.pl)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	key, ok := n.mix.p.keys.Key(n.epoch)
	if !ok {
		b.Fatal("no key")
	}
	count := max(b.N, 2000)
	pkts, index := benchPackets(b, geometry(n.doc), key, n.path2(b, 0), 2*count)
	st := newStream(b, c, n.sink, pkts, index)

	b.ResetTimer()
	elapsed := st.run(0, count, 0)
	b.StopTimer()
	rate := float64(count) / elapsed.Seconds()
	sp50, sp99 := st.latencies(0, count)
	// At about half the saturated rate: the latency a node adds when it is
	// not the bottleneck.
	st.run(count, 2*count, time.Duration(float64(time.Second)/(rate/2)))
	p50, p99 := st.latencies(count, 2*count)

	var h dto.Metric
	n.mix.p.m.unwrap.Write(&h)
	unwrap := h.GetHistogram().GetSampleSum() / float64(h.GetHistogram().GetSampleCount())

	procs := runtime.GOMAXPROCS(0)
	b.ReportMetric(unwrap*1e6, "unwrap-µs")
	// The share of the cores the workers spent unwrapping: the rest is
	// links, queues, the feeder and the sink.
	b.ReportMetric(rate*unwrap/float64(procs), "unwrap-share")
	b.ReportMetric(rate, "packets/s")
	b.ReportMetric(rate/float64(procs), "packets/s/core")
	b.ReportMetric(float64(procs), "GOMAXPROCS")
	reportLatencies(b, "", p50, p99)
	reportLatencies(b, "-saturated", sp50, sp99)
	if d := dropCounts(n.mix); len(d) != 0 {
		b.Errorf("drops: %v", d)
	}
}

// BenchmarkDelayMemory holds 100,000 packets in a delay queue as the
// pipeline does (a pooled packet buffer and the next hop per entry) and
// reports the heap they take.
func BenchmarkDelayMemory(b *testing.B) {
	const held100k = 100_000
	pl := sphinx.DefaultGeometry().PacketLength()
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		q, err := delay.New(delay.Config{MaxPackets: held100k, MaxBytes: held100k * int64(pl), MaxDelay: time.Hour}, func(held) {})
		if err != nil {
			b.Fatal(err)
		}
		p := newPool(pl, 1024)
		for i := range held100k {
			h := held{buf: p.get()}
			h.next[0] = byte(i)
			if err := q.Push(h, pl, time.Time{}, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/100k-packets")
		runtime.KeepAlive(q)
	}
}

// BenchmarkReplayMemory reports the size of one epoch's replay filter as
// the pipeline sizes it for the default rate (10,000 packets/s) and epoch
// (20 minutes): rate × 1.25 epochs of tags.
func BenchmarkReplayMemory(b *testing.B) {
	for range b.N {
		capacity := uint64(DefaultMaxPacketRate) * uint64((25*time.Minute)/time.Second)
		s, err := replay.OpenSet(replay.SetConfig{Dir: filepath.Join(b.TempDir(), "r"), Capacity: capacity, FPRate: DefaultReplayFPRate})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Filter(1); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(s.MemoryBytes())/(1<<20), "MiB/epoch")
		s.Close()
	}
}
