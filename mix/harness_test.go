package mix

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorus-mixnet/chorus/mix/hop"
	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/link"
	"github.com/chorus-mixnet/chorus/mix/mixtest"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/epoch"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// testDir is the directory of every node in a test (mixtest.Directory),
// with the nodes' DialContext.
type testDir struct {
	*mixtest.Directory
	// dial, if set, is the nodes' DialContext (in-memory links).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func newTestDir(layers int) *testDir { return &testDir{Directory: mixtest.NewDirectory(layers)} }

// doc returns the document for e, failing the test if there is none.
func (d *testDir) doc(t testing.TB, e uint64) *pki.Document {
	t.Helper()
	doc, _, err := d.Document(context.Background(), e)
	if err != nil {
		t.Fatalf("document for epoch %d: %v", e, err)
	}
	return doc
}

// schedule returns an epoch schedule in which the current epoch is 10 and
// the next begins after untilNext.
func schedule(t testing.TB, period, untilNext time.Duration) *epoch.Schedule {
	t.Helper()
	genesis := time.Now().Add(untilNext - 11*period)
	s, err := epoch.New(genesis, period, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listen opens a loopback listener for a node.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// nodeConfig is the config of the test node name.
func nodeConfig(name string, role pki.Role, addr, dataDir string, s *epoch.Schedule) Config {
	return Config{
		Name:         name,
		Role:         role,
		Addresses:    []string{"tcp://" + addr},
		DataDir:      dataDir,
		Identity:     pkitest.Identity(name),
		LinkKey:      pkitest.Link(name),
		Schedule:     s,
		DrainTimeout: 5 * time.Second,
		MinBackoff:   20 * time.Millisecond,
		MaxBackoff:   500 * time.Millisecond,
		PollInterval: 20 * time.Millisecond,
		// Small replay filters: the tests send hundreds of packets, not
		// an epoch's worth at full rate.
		MaxPacketRate: 10,
	}
}

// running is a Node or provider stand-in running in a test.
type running struct {
	name string
	addr string
	dir  string
	reg  *prometheus.Registry
	node *Node     // a mix
	p    *Pipeline // the node's pipeline, or the provider stand-in
	stop func() error
}

// startNode starts a mix node named name in layer on ln.
func startNode(t testing.TB, dir *testDir, s *epoch.Schedule, name string, layer int, ln net.Listener, dataDir string, mutate func(*Config)) *running {
	t.Helper()
	dir.Expect(name, layer)
	if dataDir == "" {
		dataDir = filepath.Join(t.TempDir(), name)
	}
	cfg := nodeConfig(name, pki.RoleMix, ln.Addr().String(), dataDir, s)
	if mutate != nil {
		mutate(&cfg)
	}
	reg := prometheus.NewRegistry()
	n, err := New(cfg, Deps{Log: testLog(name), Registerer: reg, Documents: dir, Uploader: dir, Listener: ln, DialContext: dir.dial})
	if err != nil {
		t.Fatal(err)
	}
	r := &running{name: name, addr: ln.Addr().String(), dir: dataDir, reg: reg, node: n, p: n.Pipeline()}
	r.stop = mixtest.Run(t, n.Run, n.Close)
	return r
}

// startProvider starts a provider stand-in: a Pipeline with a Deliver
// hook, accepting node links on ln the way the provider does.
func startProvider(t testing.TB, dir *testDir, s *epoch.Schedule, name string, ln net.Listener, deliver func(*hop.Decision)) *running {
	t.Helper()
	dir.Expect(name, pki.ProviderLayer)
	dataDir := filepath.Join(t.TempDir(), name)
	cfg := nodeConfig(name, pki.RoleProvider, ln.Addr().String(), dataDir, s)
	cfg.Deliver = deliver
	reg := prometheus.NewRegistry()
	p, err := NewPipeline(cfg, Deps{Log: testLog(name), Registerer: reg, Documents: dir, Uploader: dir, DialContext: dir.dial})
	if err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context) error {
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-p.Started():
			case <-ctx.Done():
				ln.Close()
				return
			}
			stop := context.AfterFunc(ctx, func() { ln.Close() })
			defer stop()
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Go(func() {
					c, err := link.Server(ctx, nc, p.LinkConfig())
					if err == nil {
						p.ServeLink(ctx, c)
					}
				})
			}
		})
		err := p.Run(ctx)
		wg.Wait()
		return err
	}
	r := &running{name: name, addr: ln.Addr().String(), dir: dataDir, reg: reg, p: p}
	r.stop = mixtest.Run(t, run, p.Close)
	return r
}

// waitFor polls cond until it holds or a generous timeout passes; it
// asserts an outcome, never a timing.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dropped reads chorus_mix_packets_dropped_total{reason}.
func dropped(r *running, reason string) float64 {
	return testutil.ToFloat64(r.p.m.dropped.WithLabelValues(reason))
}

// hopFor builds the path hop of node desc for epoch e with the given
// commands.
func hopFor(t testing.TB, desc *pki.Descriptor, e uint64, cmds ...sphinx.Command) sphinx.PathHop {
	t.Helper()
	k, ok := desc.SphinxKey(e)
	if !ok {
		t.Fatalf("%s has no key for epoch %d", desc.Name, e)
	}
	return sphinx.PathHop{ID: desc.ID, PublicKey: k, Commands: cmds}
}

func node(t testing.TB, doc *pki.Document, name string) *pki.Descriptor {
	t.Helper()
	for _, d := range doc.Providers {
		if d.Name == name {
			return d
		}
	}
	for _, l := range doc.Layers {
		for _, d := range l {
			if d.Name == name {
				return d
			}
		}
	}
	t.Fatalf("no node %s in the document", name)
	return nil
}

func geometry(doc *pki.Document) *sphinx.Geometry {
	g, err := sphinx.NewGeometry(doc.Geometry.Hops, doc.Geometry.UserPayloadLength, doc.Geometry.WithSURB)
	if err != nil {
		panic(err)
	}
	return g
}

func newPacket(t testing.TB, doc *pki.Document, path []sphinx.PathHop, payload []byte) []byte {
	t.Helper()
	pkt, err := sphinx.NewPacket(rand.Reader, geometry(doc), path, payload)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

// dialAs opens a link to addr as the pkitest node name, expecting the
// peer key of node to.
func dialAs(t testing.TB, name, addr string, to keys.LinkPublicKey, packetLength int) (*link.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return link.Dial(ctx, "tcp", addr, link.Config{PrivateKey: pkitest.Link(name), PacketLength: packetLength}, to)
}

// waitForReady waits until every node is ready, naming those that are
// not if it gives up.
func waitForReady(t testing.TB, rs ...*running) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var errs []string
		for _, r := range rs {
			if err := r.p.Ready(); err != nil {
				errs = append(errs, r.name+": "+err.Error())
			}
		}
		if len(errs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes not ready: %v", errs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testLog logs to stderr when MIX_TEST_LOG is set (debug level), else
// discards.
func testLog(name string) *slog.Logger {
	if os.Getenv("MIX_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
}

// dropCounts returns the nonzero drop counters of r.
func dropCounts(r *running) map[string]float64 {
	out := map[string]float64{}
	for _, reason := range dropReasons() {
		if v := dropped(r, reason); v != 0 {
			out[reason] = v
		}
	}
	return out
}
