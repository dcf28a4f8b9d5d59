package mix

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorus-mixnet/chorus/mix/hop"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// recipient is the mailbox the test packets are for.
var recipient = [sphinx.RecipientIDLength]byte{'a', 'l', 'i', 'c', 'e'}

// deliveries records what a provider stand-in delivers: the index each
// test packet carries in its payload, and when.
type deliveries struct {
	mu  sync.Mutex
	at  map[uint64]time.Time
	dup int
}

func newDeliveries() *deliveries { return &deliveries{at: map[uint64]time.Time{}} }

func (d *deliveries) deliver(dec *hop.Decision) {
	if dec.Recipient != recipient || dec.IsSURBReply {
		return
	}
	i := binary.BigEndian.Uint64(dec.Payload)
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.at[i]; ok {
		d.dup++
	}
	d.at[i] = now
}

func (d *deliveries) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.at)
}

func (d *deliveries) get(i uint64) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.at[i]
	return t, ok
}

// fullNet is a whole network in one process over loopback TCP: one mix
// per layer (real Nodes) and a provider stand-in that is first and last
// hop.
type fullNet struct {
	dir      *testDir
	mixes    []*running
	provider *running
	got      *deliveries
}

func startFullNet(t *testing.T, period, untilNext time.Duration) *fullNet {
	t.Helper()
	const layers = 3
	s := schedule(t, period, untilNext)
	n := &fullNet{dir: newTestDir(layers), got: newDeliveries()}
	n.provider = startProvider(t, n.dir, s, "provider-0", listen(t), n.got.deliver)
	for l := range layers {
		n.mixes = append(n.mixes, startNode(t, n.dir, s, "mix-"+string(rune('0'+l))+"-0", l, listen(t), "", nil))
	}
	waitForReady(t, append([]*running{n.provider}, n.mixes...)...)
	return n
}

// send builds test packet i for epoch e along provider → mixes →
// provider with the given per-hop delays, submits it to the provider, and
// returns the sum of the delays.
func (n *fullNet) packet(t *testing.T, e uint64, i uint64, delays [4]time.Duration) []byte {
	t.Helper()
	doc := n.dir.doc(t, e)
	nodes := []string{"provider-0", "mix-0-0", "mix-1-0", "mix-2-0"}
	var path []sphinx.PathHop
	for h, name := range nodes {
		path = append(path, hopFor(t, node(t, doc, name), e, sphinx.NodeDelay{Delay: uint32(delays[h] / time.Millisecond)}))
	}
	path = append(path, hopFor(t, node(t, doc, "provider-0"), e, sphinx.Recipient{ID: recipient}))
	payload := make([]byte, 8)
	binary.BigEndian.PutUint64(payload, i)
	return newPacket(t, doc, path, payload)
}

func randomDelays(max time.Duration) (d [4]time.Duration, sum time.Duration) {
	for i := range d {
		d[i] = time.Duration(rand.Int64N(int64(max/time.Millisecond))) * time.Millisecond
		sum += d[i]
	}
	return d, sum
}

// TestNetwork sends packets across the three layers and checks that each
// arrives, once, no earlier than the delays drawn for it, and that the
// mixes' loop packets come back.
func TestNetwork(t *testing.T) {
	n := startFullNet(t, time.Hour, 30*time.Minute)
	e := n.provider.p.Epoch()
	in := n.provider.p.NewIngress()
	const count = 100
	sent := make([]time.Time, count)
	sums := make([]time.Duration, count)
	for i := range uint64(count) {
		delays, sum := randomDelays(40 * time.Millisecond)
		pkt := n.packet(t, e, i, delays)
		sent[i], sums[i] = time.Now(), sum
		if err := in.Submit(context.Background(), pkt, sent[i]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every packet delivered", func() bool { return n.got.count() == count })
	var extra []time.Duration
	for i := range uint64(count) {
		at, _ := n.got.get(i)
		lat := at.Sub(sent[i])
		if lat < sums[i] {
			t.Errorf("packet %d arrived after %v, before its delays (%v) were up", i, lat, sums[i])
		}
		extra = append(extra, lat-sums[i])
	}
	if n.got.dup != 0 {
		t.Errorf("%d packets delivered twice", n.got.dup)
	}
	slices.Sort(extra)
	t.Logf("latency beyond the drawn delays over 4 hops: p50 %v, max %v", extra[len(extra)/2], extra[len(extra)-1])

	for _, m := range n.mixes {
		if v := testutil.ToFloat64(m.p.m.in); v < count {
			t.Errorf("%s: %v packets in, want at least %d", m.name, v, count)
		}
		waitFor(t, m.name+" loop packets coming back", func() bool { return testutil.ToFloat64(m.p.m.loopReceived) > 0 })
	}
	if v := dropped(n.mixes[0], dropDeliver); v != 0 {
		t.Errorf("a mix delivered %v packets", v)
	}
}

// TestEpochChange keeps traffic flowing across two epoch boundaries and
// requires every packet to arrive: packets made with the old epoch's keys
// that reach a node after the boundary are opened with the previous key,
// and the next epoch's links and keys are ready before it begins.
func TestEpochChange(t *testing.T) {
	const period = 3 * time.Second
	n := startFullNet(t, period, period/2)
	in := n.provider.p.NewIngress()
	s := n.provider.p.cfg.Schedule
	first := s.Now()
	var sent uint64
	epochs := map[uint64]int{}
	for s.Now() < first+2 || sent < 50 {
		e := s.Now()
		delays, _ := randomDelays(20 * time.Millisecond)
		if _, _, err := n.dir.Document(context.Background(), e); err != nil {
			time.Sleep(10 * time.Millisecond) // not made yet: the nodes are still uploading
			continue
		}
		pkt := n.packet(t, e, sent, delays)
		if err := in.Submit(context.Background(), pkt, time.Now()); err != nil {
			t.Fatal(err)
		}
		sent++
		epochs[e]++
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	for n.got.count() != int(sent) {
		if time.Now().After(deadline) {
			for _, m := range append([]*running{n.provider}, n.mixes...) {
				t.Logf("%s: in %v, drops %v", m.name, testutil.ToFloat64(m.p.m.in), dropCounts(m))
			}
			t.Fatalf("%d of %d packets delivered", n.got.count(), sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%d packets over epochs %v", sent, epochs)
	for _, m := range append([]*running{n.provider}, n.mixes...) {
		for _, r := range []string{"invalid", "replay", "no_peer", "queue_full", "peer_gone"} {
			if v := dropped(m, r); v != 0 {
				t.Errorf("%s dropped %v packets (%s)", m.name, v, r)
			}
		}
	}
}

// smallNet is one real mix in layer 0 with stand-ins around it: the
// providers (whose link keys the test dials with), a sink in layer 1 that
// counts what the mix forwards, and a static node in layer 2.
type smallNet struct {
	dir   *testDir
	mix   *running
	doc   *pki.Document
	epoch uint64
	pl    int
	sink  *sink
}

// sink is a layer-1 node that receives links and reports every packet.
type sink struct {
	ln   net.Listener
	mu   sync.Mutex
	n    int
	seen func(pkt []byte, at time.Time)
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func startSmallNet(t testing.TB, mutate func(*Config)) *smallNet {
	t.Helper()
	s := schedule(t, time.Hour, 30*time.Minute)
	e := s.Now()
	n := &smallNet{dir: newTestDir(3), epoch: e, sink: &sink{}}
	n.sink.ln = listen(t)
	n.dir.AddStatic("mix-1-0", 1, n.sink.ln.Addr().String(), e-2, e+3)
	n.dir.AddStatic("mix-2-0", 2, "127.0.0.1:9", e-2, e+3)
	n.dir.AddStatic("provider-0", pki.ProviderLayer, "127.0.0.1:10", e-2, e+3)
	n.dir.AddStatic("provider-1", pki.ProviderLayer, "127.0.0.1:11", e-2, e+3)
	n.mix = startNode(t, n.dir, s, "mix-0-0", 0, listen(t), "", func(c *Config) {
		c.DisableLoops = true
		if mutate != nil {
			mutate(c)
		}
	})
	geo, err := sphinx.NewGeometry(3+2, 2000, true) // pkitest.Geometry(3)
	if err != nil {
		t.Fatal(err)
	}
	n.pl = geo.PacketLength()
	startSink(t, n.sink, n.pl)
	waitForReady(t, n.mix)
	n.doc = n.dir.doc(t, e)
	return n
}

func startSink(t testing.TB, s *sink, pl int) {
	t.Helper()
	cfg := link.Config{
		PrivateKey:   pkitest.Link("mix-1-0"),
		PacketLength: pl,
		Authorize:    func(keys.LinkPublicKey) bool { return true },
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); s.ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := s.ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				c, err := link.Server(ctx, nc, cfg)
				if err != nil {
					return
				}
				defer c.Close()
				for {
					cmd, err := c.Recv(ctx)
					if err != nil {
						return
					}
					now := time.Now()
					sp, ok := cmd.(link.SendPacket)
					if !ok {
						continue
					}
					s.mu.Lock()
					s.n++
					seen := s.seen
					s.mu.Unlock()
					if seen != nil {
						seen(sp.Packet, now)
					}
				}
			})
		}
	})
}

// path2 is a packet path from the mix in layer 0 to the sink in layer 1,
// delivering there.
func (n *smallNet) path2(t testing.TB, delay time.Duration) []sphinx.PathHop {
	return []sphinx.PathHop{
		hopFor(t, node(t, n.doc, "mix-0-0"), n.epoch, sphinx.NodeDelay{Delay: uint32(delay / time.Millisecond)}),
		hopFor(t, node(t, n.doc, "mix-1-0"), n.epoch, sphinx.Recipient{ID: recipient}),
	}
}
